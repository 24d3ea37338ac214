"""Repeats in the report's comparisons and sweeps: mean +- 95 % CI, significance, knee on means."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from locust_llm.report import build
from locust_llm.report.compare import comparisons
from locust_llm.report.knee import find_knee
from locust_llm.report.load import load_runs
from locust_llm.report.repeats import mean_ci
from locust_llm.report.sweeps import find_sweeps

from .synth import make_scenario


def _repeats(run: Path, group: str, params: dict, n: int, **kw) -> None:
    for k in range(1, n + 1):
        make_scenario(
            run,
            f"{group}-r{k}",
            params={**params, "repeat_of": group, "order": len(list(run.glob("*")))},
            n=200,
            seed=hash((group, k)) % 1000,
            **{key: (v(k) if callable(v) else v) for key, v in kw.items()},
        )


@pytest.fixture
def repeated_compare(tmp_path: Path) -> Path:
    """rr vs lc, 3 repeats each: lc's TTFT is 40 ms higher (far outside the repeats' spread),
    its throughput 1 % higher (inside it)."""
    run = tmp_path / "rep-cmp"
    tput = {1: 1000.0, 2: 1040.0, 3: 960.0}
    _repeats(run, "rr", {"lb": "rr"}, 3, ttft_ms=lambda k: 100.0 + k, output_throughput=tput.get)
    _repeats(
        run, "lc", {"lb": "lc"}, 3, ttft_ms=lambda k: 140.0 + k,
        output_throughput=lambda k: tput[k] * 1.01,
    )  # fmt: skip
    return run


def test_comparison_of_repeats_gives_means_cis_and_significance(repeated_compare: Path):
    (c,) = comparisons(load_runs([repeated_compare]), resamples=200)
    assert (c.baseline.name, c.candidate.name) == ("rr", "lc")
    doc = c.to_json()
    assert doc["repeats"] == {"baseline": 3, "candidate": 3}
    assert doc["significance"].startswith("95% CIs")
    r = {x["field"]: x for x in doc["ratios"]}
    tp = r["output_throughput"]
    assert tp["baseline"] == pytest.approx(1000.0) and tp["candidate"] == pytest.approx(1010.0)
    want = mean_ci([1000.0, 1040.0, 960.0])["ci95"]
    assert tp["baseline_ci95"] == pytest.approx(want)
    assert tp["significant"] is False  # 1 % inside a +-10 % spread
    ttft = r["mean_ttft_ms" if "mean_ttft_ms" in r else "p50_ttft_ms"]
    assert ttft["significant"] is True
    assert ttft["candidate"] - ttft["baseline"] == pytest.approx(40, abs=5)


def test_report_shows_ci_and_single_run(repeated_compare: Path, tmp_path: Path):
    page = build.build_report([repeated_compare], tmp_path / "o", resamples=200)
    text = page.read_text()
    assert "means over 3 / 3 repeats" in text and "&plusmn;" in text
    doc = json.loads((tmp_path / "o" / "summary.json").read_text())
    (cmp_,) = doc["comparisons"]
    assert cmp_["baseline"] == "rr" and cmp_["repeats"]["candidate"] == 3
    # the same two scenarios once each: "single run", nothing called significant
    one = tmp_path / "one"
    make_scenario(one, "rr", params={"lb": "rr", "order": 0}, ttft_ms=100)
    make_scenario(one, "lc", params={"lb": "lc", "order": 1}, ttft_ms=140, seed=3)
    (c,) = comparisons(load_runs([one]), resamples=200)
    assert c.to_json()["significance"] == "single run"
    assert all(x["significant"] is None and x["note"] == "single run" for x in c.ratios)
    text = build.build_report([one], tmp_path / "o1", resamples=200).read_text()
    assert "single run: no between-run spread" in text


def test_sweep_with_repeats_is_one_point_per_level_with_ci_and_knee_on_means(tmp_path: Path):
    run = tmp_path / "sw"
    users = [1, 5, 10, 20, 40, 80]
    # plateau at 20 users; the repeats at 40 scatter widely, one of them far above the
    # plateau: a knee on all points would sit at 40, the means keep it at 20
    spread = {40: [600.0, 1800.0, 600.0]}
    for u in users:
        base = 50.0 * min(u, 20)
        for k, y in enumerate(spread.get(u, [base * 0.98, base, base * 1.02]), 1):
            make_scenario(
                run, f"u{u}-r{k}",
                params={"users": u, "repeat_of": f"u{u}", "order": len(list(run.glob("*")))},
                n=30, output_throughput=y, slo_passed=u < 80 and not (u == 40 and k == 1),
                seed=u * 10 + k,
            )  # fmt: skip
    (sw,) = find_sweeps(load_runs([run]))
    (c,) = sw.curves
    assert c.xs == [float(u) for u in users]
    assert c.throughput[users.index(40)] == pytest.approx(1000.0)
    lo, hi = c.throughput_ci[users.index(40)]
    assert lo < 600 and hi > 1800  # t(0.975, 2) = 4.303: wide with three repeats
    assert c.knee is not None and c.knee.x == 20.0
    every_run = find_knee(
        [u for u in users for _ in range(3)],
        [y for u in users for y in spread.get(u, [50.0 * min(u, 20)] * 3)],
    )
    assert every_run is not None and every_run.x == 40.0  # what the knee was before
    assert c.max_slo_x == 20.0  # one repeat at 40 failed: the level fails
    j = c.to_json(sw.axis)
    assert j["repeats"] == [3] * len(users) and j["output_throughput_ci95"][0] is not None
    page = build.build_report([run], tmp_path / "o", resamples=50).read_text()
    assert "knee on the means" in page and '"error_y"' in page


@pytest.mark.browser
def test_repeated_sweep_and_comparison_render_in_chromium(repeated_compare: Path, tmp_path: Path):
    from .browser import check_report_in_browser

    run = tmp_path / "sw"
    for u in (1, 10, 20, 40):
        for k in (1, 2, 3):
            make_scenario(
                run, f"u{u}-r{k}",
                params={"users": u, "repeat_of": f"u{u}", "order": u * 10 + k},
                n=20, output_throughput=50.0 * min(u, 20) * (1 + 0.05 * (k - 2)), seed=u + k,
            )  # fmt: skip
    page = build.build_report([run, repeated_compare], tmp_path / "o", resamples=50)
    check_report_in_browser(page, "report-repeats.png", min_plots=3)


def test_equal_group_names_in_two_runs_stay_two_groups(repeated_compare: Path, tmp_path: Path):
    import shutil

    from locust_llm.report.repeats import collapse

    other = tmp_path / "again"
    shutil.copytree(repeated_compare, other)
    units = collapse(load_runs([repeated_compare, other]))
    assert [u.name for u in units] == ["rep-cmp/rr", "rep-cmp/lc", "again/rr", "again/lc"]
    assert all(len(u.repeats) == 3 for u in units)
