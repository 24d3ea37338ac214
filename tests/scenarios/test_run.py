"""End to end on the emulator: run a two-scenario sweep, resume it, interrupt one, gate on SLO."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from locust_llm.scenarios import main
from tests.runs import alive

from ..report.browser import check_report_in_browser

FAST_EMU = '["--emu-profile", "constant", "--emu-ttft-ms", "20", "--emu-itl-ms", "5"]'


def toml(tmp_path: Path, body: str, name: str = "sweep.toml") -> Path:
    p = tmp_path / name
    p.write_text(
        "[defaults]\n"
        'model = "emu-model"\n'
        'locustfile = "locustfiles/chat.py"\n'
        f"emulator_args = {FAST_EMU}\n"
        "max_tokens = 16\nprompt_tokens = 32\n" + body
    )
    return p


@pytest.mark.browser
def test_two_scenario_sweep_end_to_end_and_resume(tmp_path: Path, capsys):
    f = toml(
        tmp_path,
        '[[scenario]]\nname = "u{users}"\nusers = [2, 6]\nreplicas = 2\nlb = "least_conn"\n'
        'warmup = "1s"\nslo = ["error_rate<=1%", "completed>=1"]\n',
    )
    out = tmp_path / "reports"
    args = [str(f), "--backend", "emulator", "--run-time", "4s", "--out", str(out)]
    assert main(args) == 0
    log = capsys.readouterr().out
    assert "1/2 u2: backend up" in log and "ETA" in log and "2/2 u6: done" in log
    run = out / "sweep"
    for sc in ("u2", "u6"):
        d = run / sc
        for name in (
            "summary.json",
            "records.jsonl",
            "scenario.json",
            "server_metrics.jsonl",
            "events.jsonl",
            "locust_stats.csv",
            "locust.log",
            ".done",
            "pids.json",
        ):
            assert (d / name).is_file(), d / name
        summary = json.loads((d / "summary.json").read_text())
        assert summary["completed"] > 0 and summary["failed"] == 0
        assert [s["passed"] for s in summary["slo"]] == [True, True]
        lines = [json.loads(x) for x in (d / "server_metrics.jsonl").read_text().splitlines()]
        replicas = {x["replica"] for x in lines if "replica" in x and "error" not in x}
        assert len(replicas) == 2
        assert any("nginx" in x for x in lines)
        assert all(not alive(p) for p in json.loads((d / "pids.json").read_text()).values())
    with (run / "summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["scenario"] for r in rows] == ["u2", "u6"] and [r["users"] for r in rows] == [
        "2",
        "6",
    ]
    counts = check_report_in_browser(run / "report.html", "scenarios-sweep.png", min_plots=3)
    assert counts["divs"] >= 4  # sweep, CDF, 2 time series

    # the same command again resumes: nothing re-runs, the report is rebuilt
    t0 = time.monotonic()
    assert main(args) == 0
    assert "finished earlier, kept" in capsys.readouterr().out
    assert time.monotonic() - t0 < 15
    with (run / "summary.csv").open() as fh:
        assert [r["scenario"] for r in csv.DictReader(fh)] == ["u2", "u6"]


def test_slo_failure_exits_3(tmp_path: Path):
    f = toml(tmp_path, '[[scenario]]\nname = "s"\nusers = 2\nslo = ["completed>=100000000"]\n')
    assert main([str(f), "--run-time", "2s", "--out", str(tmp_path), "--no-report"]) == 3
    done = json.loads((tmp_path / "sweep" / "s" / ".done").read_text())
    assert done["slo_passed"] is False


@pytest.mark.timing  # wall-clock sensitive (signals, a knee, a browser): run alone
def test_sigint_tears_down_and_keeps_finished(tmp_path: Path):
    f = toml(
        tmp_path,
        '[[scenario]]\nname = "first"\nusers = 2\nrun_time = "2s"\n'
        '[[scenario]]\nname = "second"\nusers = 2\nrun_time = "60s"\nreplicas = 2\n',
    )
    out = tmp_path / "reports"
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust_llm.cli", "run", str(f), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    seen = []
    try:
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            seen.append(line)
            if "second: load:" in line or time.monotonic() > deadline:
                break
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(seen) + rest
    assert proc.returncode == 130, text
    assert "interrupted" in text
    run = out / "sweep"
    assert (run / "first" / ".done").is_file()
    assert not (run / "second" / ".done").exists()
    pids = json.loads((run / "second" / "pids.json").read_text())
    assert len(pids) == 4  # 2 replicas, nginx, locust
    time.sleep(0.5)
    assert [p for p in pids.values() if alive(p)] == []
    assert (run / "report.html").is_file()  # finished scenarios are reported


def test_lb_policies_example_runs_on_the_emulator(tmp_path: Path):
    """The lb-policies file as shipped: 3 models x 2 replicas behind nginx, model routing."""
    root = Path(__file__).resolve().parents[2]
    code = main([str(root / "scenarios" / "lb-policies.toml"), "--backend", "emulator",
                 "--run-time", "3s", "--only", "least_conn-u30", "--out", str(tmp_path),
                 "--no-report"])  # fmt: skip
    d = tmp_path / "lb-policies" / "least_conn-u30"
    summary = json.loads((d / "summary.json").read_text())
    assert code == 0, summary.get("errors")
    assert summary["failed"] == 0 and summary["completed"] > 0
    with (d / "locust_stats.csv").open() as fh:
        names = {r["Name"] for r in csv.DictReader(fh) if r["Type"] != "LLM"}
    assert sum("[" in n for n in names) == 3  # one request row per model
    lines = [json.loads(x) for x in (d / "server_metrics.jsonl").read_text().splitlines()]
    assert len({x["replica"] for x in lines if "replica" in x}) == 6


def test_kill_replica_is_an_event_on_the_time_axis(tmp_path: Path):
    f = toml(
        tmp_path,
        '[[scenario]]\nname = "chaos"\nusers = 4\nreplicas = 2\nrun_time = "3s"\n'
        'kill_replica = { at = "1s" }\n',
    )
    assert main([str(f), "--out", str(tmp_path / "r")]) in (0, 3)
    run = tmp_path / "r" / "sweep"
    events = [json.loads(x) for x in (run / "chaos" / "events.jsonl").read_text().splitlines()]
    killed = [e for e in events if e["kind"] == "replica_killed"]
    assert len(killed) == 1 and killed[0]["detail"].endswith("-1")
    assert "replica_killed" in (run / "report.html").read_text()
