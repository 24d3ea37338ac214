from __future__ import annotations

from pathlib import Path

import pytest

from locust_llm.report.build import build_report

from .browser import check_report_in_browser


@pytest.mark.browser
def test_sweep_report_renders_in_chromium(sweep_run: Path):
    path = build_report([sweep_run], sweep_run, resamples=50)
    # sweep + CDF + one time series per scenario
    counts = check_report_in_browser(path, "report-sweep.png", min_plots=13)
    assert counts["divs"] == 13


@pytest.mark.browser
def test_hostile_names_do_not_run_in_chromium(compare_run: Path):
    path = build_report([compare_run], compare_run, resamples=50)
    check_report_in_browser(path, "report-compare.png", min_plots=3)
