"""`locust-llm search`: the bisection on its own, the [search] table, and a real search on
the emulator whose knee is known (--max-num-seqs 32: the 33rd user queues)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from locust_llm.scenarios.bisect import Bisection
from locust_llm.scenarios.search import parse_search
from locust_llm.scenarios.spec import ScenarioError
from tests.runs import run_locust_llm


def drive(b: Bisection, capacity: float) -> list[float]:
    seen = []
    while (v := b.next_value()) is not None:
        seen.append(v)
        b.record(v, v <= capacity)
    return seen


@pytest.mark.parametrize("capacity", [1, 7, 31, 32, 33, 50, 63])
def test_bisection_finds_capacity_within_tolerance(capacity):
    b = Bisection(1, 64, 4)
    probes = drive(b, capacity)
    assert b.best <= capacity < b.lowest_fail
    assert b.lowest_fail - b.best <= 4
    assert len(probes) <= 12
    first_fail = next(i for i, v in enumerate(probes + [math.inf]) if v > capacity)
    doubling = probes[: first_fail + 1]
    assert all(b == min(2 * a, 64) for a, b in zip(doubling, doubling[1:]))


def test_bisection_edges():
    b = Bisection(8, 64, 4)
    assert drive(b, 100) == [8, 16, 32, 64] and b.best == 64 and b.lowest_fail is None
    assert "still passes" in b.state()["converged_note"]
    b = Bisection(8, 64, 4)
    assert drive(b, 2) == [8] and b.best is None
    assert "already fails" in b.state()["converged_note"]
    b = Bisection(0.5, 20, 0.25, integer=False)
    drive(b, 3.3)
    assert b.best <= 3.3 < b.lowest_fail and b.lowest_fail - b.best <= 0.25


def test_bisection_never_trusts_a_pass_above_a_failure():
    b = Bisection(1, 64, 1)
    for v, ok in ((1, True), (2, True), (4, False), (8, True)):
        b.record(v, ok)
    assert b.best == 2 and b.bracket == (2, 4)


@pytest.mark.parametrize(
    "raw, msg",
    [
        ({"by": "qps", "min": 1, "max": 2, "tolerance": 1}, "'by'"),
        ({"min": 1, "max": 2}, "'tolerance'"),
        ({"min": 8, "max": 4, "tolerance": 1}, "must be above min"),
        ({"min": 1.5, "max": 4, "tolerance": 1}, "whole numbers"),
        ({"min": 1, "max": 4, "tolerance": 1, "stack": "hot"}, "'stack'"),
        ({"min": 1, "max": 4, "tolerance": 1, "tol": 1}, "unknown key"),
        ({"min": 1, "max": 4, "tolerance": 1, "gate": "x>=1"}, "top-level key"),
    ],
)
def test_search_table_errors_name_the_key(raw, msg):
    with pytest.raises(ScenarioError, match=msg):
        parse_search(raw, Path("f.toml"))


KNEE_TOML = """
gate = "max_users_meeting_slo >= 28"

[defaults]
backend = "emulator"
model = "m"
serve_args = ["--max-num-seqs", "32"]
emulator_args = ["--emu-ttft-ms", "50", "--emu-itl-ms", "20"]
max_tokens = 16
ignore_eos = true
warmup = "1s"
slo = ["ttft_p99<=250ms", "error_rate<=1%"]

[[scenario]]
name = "knee"

[search]
by = "users"
min = 8
max = 64
tolerance = 4
run_time = "6s"
"""


@pytest.mark.timing  # wall-clock sensitive (signals, a knee, a browser): run alone
@pytest.mark.slow
def test_search_finds_the_emulator_knee(tmp_path):
    f = tmp_path / "knee.toml"
    f.write_text(KNEE_TOML)
    p = run_locust_llm("search", str(f), "--out", str(tmp_path), timeout=400)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    result = json.loads((tmp_path / "knee" / "search.json").read_text())
    best, fail = result["bracket"]
    assert 28 <= result["max_users_meeting_slo"] <= 32 < fail and fail - best <= 4
    assert [pr["value"] for pr in result["probes"]][:4] == [8, 16, 32, 64]
    assert "max_users_meeting_slo: " in p.stdout and "GATE PASS" in p.stdout
    summary = json.loads((tmp_path / "knee" / "summary.json").read_text())
    assert summary["search"]["max_users_meeting_slo"] == result["max_users_meeting_slo"]
    html = (tmp_path / "knee" / "report.html").read_text()
    assert "Search" in html and "max_users_meeting_slo" in html
