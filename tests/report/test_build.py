from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from locust_llm import report
from locust_llm.report.build import build_report

from .conftest import USERS, XSS


def test_sweep_report_files_columns_knee_and_slo(sweep_run: Path):
    path = build_report([sweep_run], sweep_run, resamples=100)
    assert path == sweep_run / "report.html" and path.stat().st_size > 1_000_000
    with (sweep_run / "summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["users"]) for r in rows] == USERS  # ordered by scenario.json "order"
    for col in (
        "scenario",
        "request_throughput",
        "output_throughput",
        "request_goodput",
        "completed",
        "failed",
        "error_rate",
        "slo_passed",
    ):
        assert col in rows[0]
    for m in ("ttft", "tpot", "itl", "e2el"):
        for s in ("mean", "p50", "p90", "p99"):
            assert f"{s}_{m}_ms" in rows[0]
    build_report([sweep_run], sweep_run, resamples=100)  # rebuilding next to its own output
    with (sweep_run / "summary.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == len(USERS)
    doc = json.loads((sweep_run / "summary.json").read_text())
    (curve,) = [s for s in doc["sweeps"] if s["axis"] == "users"]
    assert curve["knee"]["x"] == 40
    assert curve["max_x_meeting_slo"] == 50
    text = path.read_text()
    assert "saturation knee at <b>users = 40</b>" in text
    assert "max users meeting the SLO: <b>50</b>" in text
    assert text.count('<script type="text/javascript">') == 1  # plotly.js inlined once
    assert "<script src=" not in text and "<link " not in text  # works offline


def test_comparison_ci_and_escaping(compare_run: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert report.main([str(compare_run), "-o", str(out), "--resamples", "300"]) == 0
    doc = json.loads((out / "summary.json").read_text())
    (cmp_,) = doc["comparisons"]
    assert cmp_["baseline"] == "baseline" and cmp_["candidate"] == "core-aware" + XSS
    ttft = {d["quantile"]: d for d in cmp_["quantile_differences"] if d["metric"] == "ttft"}
    for q in (0.5, 0.99):
        assert ttft[q]["ci_low_ms"] <= 30 <= ttft[q]["ci_high_ms"]
    ratios = {r["field"]: r for r in cmp_["ratios"]}
    assert abs(ratios["p50_ttft_ms"]["ratio"] - 1.3) < 0.05
    text = (out / "report.html").read_text()
    body = text.split("</head>", 1)[1]
    # the hostile payload never appears raw: not in HTML, not inside embedded JSON
    assert "<script>window.__pwned" not in body
    assert "<img src=x" not in body
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned=1" in body
    scripts = re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', body, re.S)
    assert scripts and all("<" not in s for s in scripts)
    assert all(json.loads(s)["data"] for s in scripts)


def test_merge_two_runs_and_cli_errors(sweep_run: Path, compare_run: Path, tmp_path: Path, capsys):
    out = tmp_path / "merged"
    assert report.main([str(sweep_run), str(compare_run), "-o", str(out), "--resamples", "50"]) == 0
    with (out / "summary.csv").open() as fh:
        names = [r["scenario"] for r in csv.DictReader(fh)]
    assert "sweep-run/users-1" in names and "cmp-run/baseline" in names
    assert report.main([str(tmp_path / "nope")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert report.main([str(empty)]) == 2
    assert "no scenario results" in capsys.readouterr().err


def test_report_on_a_single_scenario_directory_does_not_overwrite_it(sweep_run: Path):
    d = sweep_run / "users-10"
    before = (d / "summary.json").read_text()
    assert report.main([str(d), "--resamples", "20"]) == 0
    assert (d / "summary.json").read_text() == before
    assert (d / "report" / "report.html").is_file()
    assert report.main([str(d), "-o", str(d)]) == 2


def test_locust_llm_report_dispatch(sweep_run: Path, tmp_path: Path):
    from locust_llm.cli import main as cli_main

    assert cli_main(["report", str(sweep_run), "-o", str(tmp_path / "o"), "--resamples", "20"]) == 0
    assert (tmp_path / "o" / "report.html").is_file()


def test_a_scenario_with_no_completed_request_is_no_data_not_zero(tmp_path: Path):
    """Every request of the 100-user point was still streaming at the end: the table and the
    sweep curve show "no data" with the reason, not 0 req/s and 0 tok/s."""
    from .synth import make_scenario

    run = tmp_path / "nd-run"
    make_scenario(run, "users-10", params={"order": 0, "users": 10}, n=50, seed=1)
    d = make_scenario(run, "users-100", params={"order": 1, "users": 100}, n=50, seed=2)
    s = json.loads((d / "summary.json").read_text())
    s.update(completed=0, failed=0, aborted=100, request_throughput=0.0, output_throughput=0.0)
    s.update(total_token_throughput=0.0, request_goodput=0.0, intervals=[])
    for k in [k for k in s if k.startswith("count_")]:
        s[k] = 0
    (d / "summary.json").write_text(json.dumps(s))
    (d / "records.jsonl").write_text("")
    build_report([run], run, resamples=50)
    with (run / "summary.csv").open() as fh:
        rows = {r["scenario"]: r for r in csv.DictReader(fh)}
    assert (
        rows["users-100"]["output_throughput"] == ""
        and rows["users-100"]["request_throughput"] == ""
    )
    assert "still streaming" in rows["users-100"]["no_data"]
    assert float(rows["users-10"]["output_throughput"]) > 0 and rows["users-10"]["no_data"] == ""
    html = (run / "report.html").read_text()
    assert "no data: no request completed: all 100 were still streaming" in html


def test_prefix_cache_hits_client_and_per_replica(tmp_path: Path):
    """The card shows the client's share from usage and each replica's own counters' rate."""
    from .synth import make_scenario

    run = tmp_path / "pc-run"
    d = make_scenario(run, "cached", params={"order": 0, "users": 4}, n=20, seed=3)
    s = json.loads((d / "summary.json").read_text())
    s.update(total_cached_tokens=4800, prefix_cache_hit_rate=0.6)
    (d / "summary.json").write_text(json.dumps(s))
    q, h = "prefix_cache_queries_total", "prefix_cache_hits_total"
    lines = [
        {"t": 1.0, "replica": "r0", q: 1000.0, h: 100.0},
        {"t": 2.0, "replica": "r0", q: 3000.0, h: 1600.0},
        {"t": 1.0, "replica": "r<1>", q: 0.0, h: 0.0},
        {"t": 2.0, "replica": "r<1>", q: 800.0, h: 200.0},
        {"t": 2.0, "nginx": {"active": 1}},
    ]
    (d / "server_metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    build_report([run], tmp_path / "out", resamples=20)
    page = (tmp_path / "out" / "report.html").read_text()
    table = re.search(r'<table class="prefix-cache">.*?</table>', page).group(0)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", table)
    assert cells == ["client (usage)", "4,800", "60 %", "server r0", "1,500", "75 %",
                     "server r&lt;1&gt;", "200", "25 %"]  # fmt: skip


def test_each_card_says_whether_the_load_generator_can_be_trusted(tmp_path: Path):
    """The client-health figures of each scenario's summary, and its verdict, on its card."""
    from .synth import make_scenario

    run = tmp_path / "health-run"
    starved = make_scenario(run, "starved", params={"order": 0, "users": 4}, n=20, seed=4)
    old = make_scenario(run, "old", params={"order": 1, "users": 8}, n=20, seed=5)
    s = json.loads((starved / "summary.json").read_text())
    s.update(timestamps="kernel", client_own_stamp=0.997, client_late_shared_share=0.021,
             p99_read_lateness_ms=412.5, client_cpu_share=0.07, client_runqueue_share=0.72,
             client_bound=False, client_read_delay=f"token reads were delayed {XSS}")  # fmt: skip
    (starved / "summary.json").write_text(json.dumps(s))
    s = json.loads((old / "summary.json").read_text())
    for k in [k for k in s if k.startswith("client_") or k == "timestamps"]:
        del s[k]
    (old / "summary.json").write_text(json.dumps(s))
    build_report([run], tmp_path / "out", resamples=20)
    page = (tmp_path / "out" / "report.html").read_text()
    lines = re.findall(r'<p class="client-health">(.*?)</p>', page)
    assert len(lines) == 1  # the summary without the fields gets none
    (line,) = lines
    for part in ("kernel stamps", "own stamp 99.7 %", "late shared reads 2.10 %",
                 "read lateness p99 412.5 ms", "CPU 7.00 %", "waited for a CPU 72 %", "delayed"):  # fmt: skip
        assert part in line, (part, line)
    assert XSS not in page and "token reads were delayed" in line
