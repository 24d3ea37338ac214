"""repeat = N (mean, CV, 95 % CI across runs) and file-level gates, on the emulator."""

from __future__ import annotations

import json

import numpy as np
import pytest

from locust_llm.report.repeats import mean_ci, t_quantile_975
from locust_llm.scenarios.gate import parse_gate
from tests.runs import run_locust_llm


def test_t_table_matches_scipy():
    from scipy import stats

    for df in range(1, 31):
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-3)


def test_ci_covers_the_true_mean_of_a_seeded_source_95_percent_of_the_time():
    rng = np.random.default_rng(15)
    hits = 0
    trials = 4000
    for _ in range(trials):
        # five repeats, each the mean ITL of 200 lognormal gaps of mean 20 ms (cv 0.3)
        sigma = np.sqrt(np.log(1 + 0.3**2))
        gaps = rng.lognormal(np.log(20) - sigma**2 / 2, sigma, (5, 200))
        lo, hi = mean_ci(gaps.mean(axis=1))["ci95"]
        hits += lo <= 20 <= hi
    assert 0.935 <= hits / trials <= 0.965


def test_gate_parse_and_check():
    g = parse_gate("max_users_meeting_slo >= 40")
    assert g.check({"max_users_meeting_slo": 45})["passed"]
    assert not g.check({"max_users_meeting_slo": 30})["passed"]
    assert not g.check({"max_users_meeting_slo": None})["passed"]  # nothing met: fails
    with pytest.raises(ValueError, match="FIELD OP NUMBER"):
        parse_gate("max users >= 4")


SWEEP = """
gate = "max_users_meeting_slo >= {need}"

[defaults]
backend = "emulator"
model = "m"
serve_args = ["--max-num-seqs", "4"]
emulator_args = ["--emu-ttft-ms", "30", "--emu-itl-ms", "10"]
max_tokens = 16
ignore_eos = true
run_time = "4s"
slo = ["ttft_p99<=120ms"]

[[scenario]]
name = "c{{users}}"
users = [2, 4, 12]
"""


@pytest.mark.slow
def test_sweep_gates_on_its_result_not_on_its_overloaded_top(tmp_path):
    f = tmp_path / "sweep.toml"
    f.write_text(SWEEP.format(need=4))
    p = run_locust_llm("run", str(f), "--out", str(tmp_path), "--no-report")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "GATE PASS max_users_meeting_slo >= 4 (got 4)" in p.stdout
    top = json.loads((tmp_path / "sweep" / "c12" / "summary.json").read_text())
    assert not all(r["passed"] for r in top["slo"])  # the top level failed its SLO, as meant
    f.write_text(SWEEP.format(need=12))  # same scenarios (kept), stricter gate
    p = run_locust_llm("run", str(f), "--out", str(tmp_path), "--no-report")
    assert p.returncode == 3 and "GATE FAIL" in p.stdout


REPEAT = """
[defaults]
backend = "emulator"
model = "m"
emulator_args = ["--emu-ttft-ms", "30", "--emu-itl-ms", "20", "--emu-itl-dist", "lognormal"]
max_tokens = 32
ignore_eos = true
run_time = "4s"

[[scenario]]
name = "rep"
users = 4
repeat = 3
"""


@pytest.mark.slow
def test_repeats_give_mean_cv_and_ci_in_the_run_summary(tmp_path):
    f = tmp_path / "rep.toml"
    f.write_text(REPEAT)
    p = run_locust_llm("run", str(f), "--out", str(tmp_path))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    doc = json.loads((tmp_path / "rep" / "summary.json").read_text())
    (g,) = doc["repeats"]
    assert g["scenario"] == "rep" and g["repeats"] == ["rep-r1", "rep-r2", "rep-r3"]
    itl = g["metrics"]["mean_tpot_ms"]
    lo, hi = itl["ci95"]
    assert itl["n"] == 3 and lo <= itl["mean"] <= hi and itl["cv"] < 0.1
    # the emulator's configured mean gap is 20 ms: the CI sits on it (within its step jitter)
    assert lo - 1.0 <= 20.0 <= hi + 1.0
    assert "Repeats" in (tmp_path / "rep" / "report.html").read_text()


def test_repeats_of_a_sweep_are_one_family_so_levels_past_saturation_are_skipped(tmp_path):
    from locust_llm.scenarios.repeats import expand
    from locust_llm.scenarios.result import sweep_family
    from locust_llm.scenarios.spec import load_file

    f = tmp_path / "sw.toml"
    f.write_text('[[scenario]]\nname = "sw"\nmodel = "m"\nusers = [4, 8]\nrepeat = 2\n')
    specs = expand(load_file(f))
    fams = [sweep_family(s.params, s.swept) for s in specs]
    assert [s.name for s in specs] == [
        "sw-users-4-r1",
        "sw-users-4-r2",
        "sw-users-8-r1",
        "sw-users-8-r2",
    ]
    assert len({k for k, _, _ in fams}) == 1  # one family: 8 is skipped once 4 saturated
    assert [v for _, _, v in fams] == [4.0, 4.0, 8.0, 8.0]


SWEEP_REPEAT = """
[defaults]
backend = "emulator"
model = "m"
serve_args = ["--max-num-seqs", "4"]
emulator_args = ["--emu-ttft-ms", "30", "--emu-itl-ms", "20", "--emu-seed", "7"]
max_tokens = 16
ignore_eos = true
run_time = "4s"

[[scenario]]
name = "sw"
users = [1, 4, 16]
repeat = 2
"""


@pytest.mark.slow
def test_sweep_with_repeats_on_the_emulator_gives_a_point_per_level_and_the_knee(tmp_path):
    """4 sequences: throughput grows to 4 users and stays flat at 16, in every repeat."""
    f = tmp_path / "swr.toml"
    f.write_text(SWEEP_REPEAT)
    p = run_locust_llm("run", str(f), "--out", str(tmp_path))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    doc = json.loads((tmp_path / "swr" / "summary.json").read_text())
    (curve,) = [c for c in doc["sweeps"] if c["axis"] == "users"]
    assert curve["x"] == [1.0, 4.0, 16.0] and curve["repeats"] == [2, 2, 2]
    per_run = {s["scenario"]: s["output_throughput"] for s in doc["scenarios"]}
    for x, mean, ci in zip(curve["x"], curve["output_throughput"], curve["output_throughput_ci95"]):
        runs = [per_run[f"sw-users-{x:g}-r{k}"] for k in (1, 2)]
        assert mean == pytest.approx(sum(runs) / 2) and ci[0] <= mean <= ci[1]
    assert curve["knee"]["x"] == 4.0
    assert curve["output_throughput"][2] < 1.3 * curve["output_throughput"][1]
