"""Open a report in headless Debian Chromium and check that it rendered.

Shared by the report and scenario tests: plot divs must hold plotly SVG, the browser log
must have no SEVERE entries, no injected script may have run, and a screenshot is saved
under tests/artifacts/ (git-ignored) for a human to look at.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def skip_without_browser() -> None:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("chromium/chromedriver not installed")
    pytest.importorskip("selenium")


def check_report_in_browser(report: Path, screenshot: str, min_plots: int = 1) -> dict:
    """Load `report`, assert plots rendered and no JS errors; returns counts for callers."""
    skip_without_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="locust-llm-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1400,2400",
    ):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.set_page_load_timeout(60)
        driver.get(report.resolve().as_uri())
        driver.set_script_timeout(30)
        counts = driver.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            const t0 = Date.now();
            (function poll() {
              const divs = document.querySelectorAll('div.plot');
              const drawn = Array.from(divs).filter(
                d => d.classList.contains('js-plotly-plot') && d.querySelector('.main-svg'));
              if (drawn.length === divs.length || Date.now() - t0 > 20000) {
                done({divs: divs.length, drawn: drawn.length,
                      traces: Array.from(drawn).map(d => d.querySelectorAll('.trace').length),
                      pwned: window.__pwned || 0});
              } else { setTimeout(poll, 100); }
            })();
            """
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / screenshot))
        severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    assert not severe, severe
    assert counts["pwned"] == 0, "injected script ran"
    assert counts["divs"] >= min_plots and counts["drawn"] == counts["divs"], counts
    assert all(t > 0 for t in counts["traces"]), counts
    return counts
