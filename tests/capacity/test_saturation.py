"""Over-saturation detector: the stated test on synthetic series, then on real runs of the
emulator (open loop above and below its capacity)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from locust_llm.metrics.saturation import detect, mann_kendall_p, theil_sen_slope
from tests.runs import run_locust
from tests.runs import summary as read_summary


def rows(in_flight, ttft=None, t0=1000):
    ttft = ttft if ttft is not None else [50.0] * len(in_flight)
    return [
        {"t": t0 + i, "requests": 5, "in_flight": f, "ttft_p50_ms": x}
        for i, (f, x) in enumerate(zip(in_flight, ttft))
    ]


def test_mann_kendall_and_theil_sen_match_scipy():
    from scipy import stats

    rng = np.random.default_rng(1)
    y = np.arange(30) * 0.03 + rng.normal(0, 1, 30)
    # Mann-Kendall's S is Kendall's tau against time; scipy's asymptotic p-value is two-sided
    # and without the continuity correction
    tau = stats.kendalltau(np.arange(30), y, method="asymptotic")
    assert tau.statistic > 0
    assert mann_kendall_p(y) == pytest.approx(tau.pvalue / 2, rel=0.15)
    assert theil_sen_slope(np.arange(30), y) == pytest.approx(
        stats.theilslopes(y, np.arange(30)).slope
    )


def test_growing_queue_detected_with_the_time_it_started():
    flat = [8.0] * 20
    growing = [8.0 + 1.5 * i for i in range(20)]
    v = detect(rows(flat + growing))
    assert v.detected and v.series == "in_flight"
    assert 9 <= v.at_s <= 30  # found inside the growing part, not before it
    assert v.p_value < 1e-3 and v.growth >= 0.5


def test_flat_noisy_series_never_fire():
    rng = np.random.default_rng(7)
    alarms = 0
    for _ in range(200):
        f = list(np.clip(rng.normal(30, 6, 60), 0, None).round())
        x = list(rng.lognormal(np.log(80), 0.4, 60))
        alarms += detect(rows(f, x)).detected
    assert alarms == 0


def test_small_certain_drift_is_not_saturation():
    # TTFT creeping from 100 to 110 ms: a significant trend, but not a queue without bound
    x = [100 + 0.5 * i for i in range(20)]
    v = detect(rows([10.0] * 20, x))
    assert not v.detected


def test_ramp_before_start_after_is_ignored():
    ramp = [float(i) for i in range(20)] + [20.0] * 20
    assert detect(rows(ramp)).detected
    assert not detect(rows(ramp), start_after=1020).detected


def _open_loop(tmp: Path, rate: float) -> dict:
    """rate.py against an emulator with 4 sequences of ~0.37 s: about 10 req/s capacity."""
    summary = tmp / f"s{rate:g}.json"
    cmd = [
        "-f", "locustfiles/rate.py", "--headless",
        "-u", "150", "-r", "150", "-t", "22s", "--llm-rate", str(rate),
        "--llm-arrival", "poisson", "--llm-max-tokens", "16", "--llm-ignore-eos",
        "--llm-serve-args", "--max-num-seqs 4 --emu-ttft-ms 50 --emu-itl-ms 20",
        "--llm-summary", str(summary), "--stop-timeout", "0",
    ]  # fmt: skip
    p = run_locust(cmd, timeout=120)
    return read_summary(summary, p), p.stderr


@pytest.mark.slow
def test_overloaded_emulator_is_detected_and_logged(tmp_path):
    s, log = _open_loop(tmp_path, 25)
    sat = s["saturation"]
    assert sat["detected"], sat
    assert "SATURATED" in log and "queueing grows without bound" in log
    # noticed while the run went (logged once), before the end-of-run verdict
    assert log.count("SATURATED (live") == 1
    assert log.index("SATURATED (live") < log.rindex("SATURATED")


@pytest.mark.slow
def test_healthy_emulator_is_not_saturated(tmp_path):
    s, log = _open_loop(tmp_path, 4)
    assert s["completed"] > 50
    assert not s["saturation"]["detected"], s["saturation"]
    assert "SATURATED" not in log
