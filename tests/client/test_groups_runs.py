"""Per-name, per-model and per-turn figures from real `locust` runs against the emulator."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.client.test_locust_runs import free_port, run

EMU = "--emu-ttft-ms 20 --emu-itl-ms 5 --served-model-name m1 m2"


def _records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _measured(recs: list[dict]) -> list[dict]:
    """The records the summary counts as completed: not warm-up, no error, not aborted."""
    return [r for r in recs if not r["warmup"] and r["error"] is None and not r["aborted"]]


def _rows(prefix: Path) -> dict[str, dict]:
    with open(f"{prefix}_stats.csv") as f:
        return {r["Name"]: r for r in csv.DictReader(f) if r["Type"] == "LLM"}


def _check_groups(s: dict, recs: list[dict], kind: str, keys: set[str]) -> None:
    groups = s[f"by_{kind}"]
    assert set(groups) == keys
    assert sum(g["completed"] for g in groups.values()) == s["completed"]
    assert sum(g["failed"] for g in groups.values()) == s["failed"]
    for key, g in groups.items():
        mine = [r for r in _measured(recs) if str(r[kind]) == key]
        assert g["completed"] == len(mine) > 0
        ttft = [r["ttft"] for r in mine]
        itl = [x for r in mine for x in r["itl"]]
        for p in (50, 99):
            assert g[f"p{p}_ttft_ms"] == pytest.approx(float(np.percentile(ttft, p)), rel=1e-12)
            assert g[f"p{p}_itl_ms"] == pytest.approx(float(np.percentile(itl, p)), rel=1e-12)
        assert g["count_itl"] == len(itl)
        assert g["total_output_tokens"] == sum(r["output_tokens"] for r in mine)
        assert g["output_throughput"] > 0


@pytest.mark.parametrize("processes", [None, 2])
def test_rows_and_summary_per_name_and_model(tmp_path, processes):
    extra = []
    if processes:
        port = str(free_port())
        extra = ["--processes", str(processes), "--master-bind-port", port, "--master-port", port]
    p = run(
        [
            "-f",
            "tests/client/locustfile_names.py",
            "--headless",
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "4s",
            "--llm-ignore-eos",
            "--llm-timestamps",  # every gap is an ITL sample, as the records list them
            "user",
            "--llm-model",
            "m1",
            "--llm-serve-args",
            EMU,
            "--csv",
            str(tmp_path / "run"),
            "--llm-records",
            str(tmp_path / "r.jsonl"),
            "--llm-summary",
            str(tmp_path / "summary.json"),
            *extra,
        ]
    )
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads((tmp_path / "summary.json").read_text())
    recs = _records(tmp_path / "r.jsonl")
    _check_groups(s, recs, "name", {"short", "long"})
    _check_groups(s, recs, "model", {"m1", "m2"})
    assert "by_turn" not in s  # no conversation: one value, no groups
    # Locust's rows: one per name and per model beside the run's own, counts adding up
    rows = _rows(tmp_path / "run")
    for metric in ("TTFT", "TPOT", "ITL"):
        total = int(rows[metric]["Request Count"])
        names = [int(rows[f"{metric} {n}"]["Request Count"]) for n in ("short", "long")]
        models = [int(rows[f"{metric} model={m}"]["Request Count"]) for m in ("m1", "m2")]
        assert sum(names) == total == sum(models), metric
    # ... and as many as the summary's groups, short by at most what the run's own rows are
    # short of the summary (requests finishing while Locust writes its last CSV line)
    for metric, field in (("TTFT", "count_ttft"), ("ITL", "count_itl")):
        lag = s[field] - int(rows[metric]["Request Count"])
        assert 0 <= lag <= 8 * (1 if field == "count_ttft" else 24), (metric, lag)
        for kind, key, row in (
            ("name", "short", f"{metric} short"),
            ("name", "long", f"{metric} long"),
            ("model", "m1", f"{metric} model=m1"),
            ("model", "m2", f"{metric} model=m2"),
        ):
            short_by = s[f"by_{kind}"][key][field] - int(rows[row]["Request Count"])
            assert 0 <= short_by <= lag, (row, short_by, lag)
    # the console's per-name block, and the report's tables per grouping
    console = p.stdout + p.stderr
    assert "By request name" in console and " long " in console
    if processes is None:
        _check_report(tmp_path, s)


def _check_report(run_dir: Path, s: dict) -> None:
    from locust_llm import report

    out = run_dir / "report"
    assert report.main([str(run_dir), "-o", str(out), "--resamples", "50"]) == 0
    html = (out / "report.html").read_text()
    assert "by request name" in html and "by model" in html and "by turn" not in html
    with open(out / "groups.csv") as f:
        lines = {(r["grouping"], r["group"]): r for r in csv.DictReader(f)}
    assert set(lines) == {("name", "short"), ("name", "long"), ("model", "m1"), ("model", "m2")}
    for (kind, key), r in lines.items():
        g = s[f"by_{kind}"][key]
        assert int(r["completed"]) == g["completed"]
        assert float(r["p99_ttft_ms"]) == g["p99_ttft_ms"]
        assert float(r["p50_itl_ms"]) == g["p50_itl_ms"]


def test_single_name_run_has_no_group_rows_or_maps(tmp_path):
    p = run(
        [
            "-f",
            "locustfiles/chat.py",
            "--headless",
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "2s",
            "--llm-max-tokens",
            "8",
            "--llm-serve-args",
            "--emu-ttft-ms 20 --emu-itl-ms 5",
            "--csv",
            str(tmp_path / "run"),
            "--llm-summary",
            str(tmp_path / "summary.json"),
        ]
    )
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads((tmp_path / "summary.json").read_text())
    assert not {"by_name", "by_model", "by_turn"} & set(s)
    assert set(_rows(tmp_path / "run")) == {"TTFT", "TPOT", "ITL"}


def test_multiturn_by_turn_records_and_session_header(tmp_path):
    truth = tmp_path / "truth.jsonl"
    p = run(
        [
            "-f",
            "locustfiles/multiturn.py",
            "--headless",
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "4s",
            "--llm-turns",
            "3",
            "--llm-timestamps",
            "user",
            "--llm-max-tokens",
            "8",
            "--llm-ignore-eos",
            "--llm-serve-args",
            f"--emu-ttft-ms 20 --emu-itl-ms 5 --emu-truth-log {truth}",
            "--llm-records",
            str(tmp_path / "r.jsonl"),
            "--llm-summary",
            str(tmp_path / "summary.json"),
        ]
    )
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads((tmp_path / "summary.json").read_text())
    recs = _records(tmp_path / "r.jsonl")
    assert {r["turn"] for r in recs} == {0, 1, 2}
    _check_groups(s, recs, "turn", {"0", "1", "2"})
    # a conversation's turns share one session id, in order; sessions differ
    by_session: dict[str, list[int]] = {}
    for r in sorted(recs, key=lambda r: r["t_start"]):
        by_session.setdefault(r["session_id"], []).append(r["turn"])
    assert len(by_session) >= 4
    assert all(turns == list(range(len(turns))) for turns in by_session.values())
    # ... and reach the server as X-Session-Id
    seen = {json.loads(x)["session_id"] for x in truth.read_text().splitlines()}
    assert {r["session_id"] for r in recs if r["status"] == 200} <= seen
