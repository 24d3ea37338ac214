"""End to end: a real Locust web UI run against the emulator; the page in headless Chromium.

The locustfile adds one user whose model name is a script tag, so the emulator's 404 message
carries markup into the error table: it must show as text and never run.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time

import pytest

from tests.report.browser import ARTIFACTS, CHROMEDRIVER, CHROMIUM, skip_without_browser
from tests.web.conftest import free_port

STATS = ("mean", "p50", "p90", "p95", "p99", "max")
METRICS = ("ttft", "tpot", "itl", "e2el")


def _stopped(run) -> dict | None:
    s = run.json("/llm/summary")
    return s if s["meta"]["state"] == "stopped" and s["completed"] > 0 else None


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="locust-llm-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={profile}", "--window-size=1400,2200",
    ):  # fmt: skip
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts), profile


@pytest.mark.timing  # wall-clock sensitive (signals, a knee, a browser): run alone
@pytest.mark.browser
@pytest.mark.timeout(120)
def test_dashboard_open_through_a_run_draws_every_row(locust_run) -> None:
    """The page polls for only the rows that changed since its last poll: open through a
    run longer than the live view's sealing age, it ends up drawing exactly the rows the
    full JSON has."""
    skip_without_browser()
    run = locust_run(run_time="32s", autoquit=30)
    run.wait_for(lambda: run.json("/llm/summary")["completed"] > 0, 40, "first completions")
    from selenium.webdriver.support.ui import WebDriverWait

    driver, profile = _driver()
    try:
        driver.set_page_load_timeout(30)
        driver.get(run.base + "/llm/")
        wait = WebDriverWait(driver, 20)
        wait.until(lambda d: d.execute_script("return document.body.dataset.updated"))
        first_t = run.json("/llm/intervals")[0]["t"]
        tails = set()
        while not _stopped(run):
            sent = driver.execute_script("return document.body.dataset.intervalsFrom")
            if sent not in (None, "null"):
                tails.add(int(sent))
            time.sleep(0.5)
        # polls after the stop: nothing new, the rows stay as merged during the run
        seen = driver.execute_script("return document.body.dataset.updated")
        wait.until(lambda d: d.execute_script("return document.body.dataset.updated") != seen)
        shown = run.json("/llm/intervals")
        drawn = driver.execute_script(
            "const g = (id, i) => document.getElementById(id).data[i];"
            "return {t: g('chart-requests', 0).x.length, req: g('chart-requests', 0).y,"
            " tok: g('chart-tokens', 0).y, inflight: g('chart-inflight', 0).y}"
        )
        assert drawn["t"] == len(shown)
        assert drawn["req"] == [None if r["partial"] else r["requests"] for r in shown]
        assert drawn["tok"] == [None if r["partial"] else r["output_tokens"] for r in shown]
        assert drawn["inflight"] == [r["in_flight"] for r in shown]
        # the page did get tails, and some from past the run's first seconds (sealed rows kept)
        assert tails and max(tails) > first_t + 5, tails
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.timing  # wall-clock sensitive (signals, a knee, a browser): run alone
@pytest.mark.browser
@pytest.mark.timeout(90)
def test_llm_tab_in_chromium(locust_run) -> None:
    skip_without_browser()
    run = locust_run(run_time="10s", autoquit=25)
    # live while running: the JSON endpoints answer and fill up
    run.wait_for(lambda: run.json("/llm/summary")["completed"] > 0, 40, "first completions")
    s = run.wait_for(lambda: _stopped(run), 30, "the run to stop")
    intervals = run.json("/llm/intervals")
    ext = json.loads(run.get("/stats/requests"))["extended_stats"][0]["data"]

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, profile = _driver()
    try:
        driver.set_page_load_timeout(30)
        driver.get(run.base + "/?tab=llm")
        wait = WebDriverWait(driver, 20)
        tab = wait.until(
            lambda d: [b for b in d.find_elements(By.CSS_SELECTOR, "[role=tab]") if b.text == "LLM"]
        )
        tab[0].click()
        # Locust's own table in the tab: exact numbers, same as the JSON
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "tbody tr")) >= 4)
        rows = driver.execute_script(  # in one script: the table is redrawn every poll
            "return [...document.querySelectorAll('tbody tr')].map(tr =>"
            " [...tr.querySelectorAll('td')].map(td => td.innerText))"
        )
        cells = {r[0]: r for r in rows if r}
        for row in ext:
            shown = cells[row["name"]]
            assert float(shown[5]) == pytest.approx(row["p95"]), (row, shown)
        assert float(cells["TTFT"][5]) == pytest.approx(round(s["p95_ttft_ms"], 2))
        # our dashboard, mounted in the tab
        frame = wait.until(lambda d: d.find_element(By.ID, "locust-llm-frame"))
        driver.execute_script("arguments[0].scrollIntoView()", frame)
        driver.switch_to.frame(frame)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-updated"))
        # read in one script: the page rebuilds its tables every poll, and an element looked
        # up between two polls is gone by the time its text is asked for
        cells, slo = driver.execute_script(
            "const c = {};"
            "document.querySelectorAll('#latency tr[data-metric] td[data-stat]').forEach(td =>"
            " { c[td.parentElement.dataset.metric + '/' + td.dataset.stat] = td.textContent; });"
            "return [c, [...document.querySelectorAll('#slo tbody tr')]"
            ".map(tr => [...tr.cells].map(td => td.innerText).join(' '))];"
        )
        for m in METRICS:
            for st in STATS:
                assert cells[f"{m}/{st}"] == f"{s[f'{st}_{m}_ms']:.2f}", (m, st, cells)
        assert slo[0].startswith("PASS ttft_p95<=800ms") and slo[1].startswith("FAIL itl_p99"), slo
        points = driver.execute_script(
            "return ['chart-tokens','chart-requests','chart-inflight','chart-ttft','chart-itl']"
            ".map(id => document.getElementById(id).data[0].x.length)"
        )
        assert all(n >= len(intervals) - 2 and n > 3 for n in points), (points, len(intervals))
        # each chart draws exactly the JSON's series: completions by finish second, tokens by
        # arrival, partial first/last seconds left out (null), in-flight as given
        series = driver.execute_script(
            "const g = (id, i) => document.getElementById(id).data[i].y;"
            "return {req: g('chart-requests', 0), fail: g('chart-requests', 1),"
            " tok: g('chart-tokens', 0), inflight: g('chart-inflight', 0)}"
        )
        shown = run.json("/llm/intervals")  # the run has stopped: the same rows as drawn

        def rate(k):
            return [None if r["partial"] else r[k] for r in shown]

        assert series["req"] == rate("requests") and series["fail"] == rate("failed")
        assert series["tok"] == rate("output_tokens")
        assert series["inflight"] == [r["in_flight"] for r in shown]
        assert series["req"][0] is None and series["req"][-1] is None
        # titles clear of plotly's mode bar
        overlaps = driver.execute_script(
            "return [...document.querySelectorAll('.js-plotly-plot')].map(p => {"
            " const t = p.querySelector('.gtitle'), m = p.querySelector('.modebar');"
            " if (!t || !m) return false;"
            " const a = t.getBoundingClientRect(), b = m.getBoundingClientRect();"
            " return !(a.right < b.left || b.right < a.left || a.bottom < b.top || b.bottom < a.top);"
            "})"
        )
        assert not any(overlaps), overlaps
        drawn = driver.execute_script("return document.querySelectorAll('.plot .main-svg').length")
        assert drawn >= 5
        # read in one script: every poll rebuilds the table, so held elements go stale
        row, cell = driver.execute_script(
            "const r = document.querySelector('#server tbody tr');"
            "const c = r && r.querySelector('[data-stat=\"prefix_cache_hit_rate\"]');"
            "return [r ? r.textContent : '', c ? c.textContent : null]"
        )
        assert "emulator" in row, row
        # the replica's own prefix-cache hit rate (its counters' growth), as /llm/server has it
        pc = run.json("/llm/server")["targets"][0]["prefix_cache"]
        assert pc["queries"] > 0 and cell == f"{pc['hit_rate'] * 100:.1f} %", (pc, cell)
        errors = driver.find_element(By.ID, "errors").text
        assert "<script>window.__pwned=1</script>" in errors  # shown as text
        assert driver.execute_script("return window.__pwned || 0") == 0
        href = driver.find_element(By.ID, "dl-intervals").get_attribute("href")
        assert href.endswith("/llm/intervals.csv")
        driver.switch_to.default_content()
        assert driver.execute_script("return window.__pwned || 0") == 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "web-llm-tab.png"))
        driver.switch_to.frame(frame)
        driver.set_window_size(1400, 2400)
        driver.get(run.base + "/llm/")
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-updated"))
        driver.save_screenshot(str(ARTIFACTS / "web-llm-dashboard.png"))
        severe = [
            e for e in driver.get_log("browser")
            if e.get("level") == "SEVERE" and "favicon" not in e.get("message", "")
        ]  # fmt: skip
        assert not severe, severe
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)

    # the final --llm-summary (written at quit) agrees with what the tab showed
    assert run.wait_exit(40) == 3  # the itl_p99<=1ms SLO fails on purpose
    final = json.loads(run.summary_path.read_text())
    for key in ("completed", "failed", "total_output_tokens"):
        assert final[key] == s[key], key
    (replica,) = final["server_prefix_cache"].values()  # from the tab's scraper
    assert replica["queries"] > 0 and 0 <= replica["hit_rate"] <= 1
    for m in METRICS:
        for st in STATS:
            assert final[f"{st}_{m}_ms"] == pytest.approx(s[f"{st}_{m}_ms"]), (m, st)


@pytest.mark.timeout(70)
def test_processes_2_merges_both_workers(locust_run) -> None:
    port = str(free_port())  # its own port: concurrent runs would collide on Locust's 5557
    run = locust_run(
        ["--processes", "2", "--master-bind-port", port, "--master-port", port],
        run_time="8s",
        autoquit=10,
    )
    run.wait_for(lambda: _stopped(run), 45, "the run to stop")
    workers = json.loads(run.get("/stats/requests"))["workers"]
    assert len(workers) == 2
    # workers send their last windows with their final reports, just after "stopped"
    time.sleep(4)
    s = run.json("/llm/summary")
    assert "locust_llm_requests_total" in run.get("/llm/metrics").decode()
    assert run.wait_exit(40) == 3
    final = json.loads(run.summary_path.read_text())
    for key in ("completed", "failed", "total_output_tokens", "p50_itl_ms"):
        assert final[key] == s[key], key
    # 4 users on 2 workers: EvilUser (fixed_count 1) + 1 chat user on one, 2 chat users on the
    # other. Failures come from the first only; >= 3 requests in flight at once (summed over
    # processes) needs chat users of both: so the master merged both workers' windows.
    assert s["failed"] >= 1 and s["completed"] > 0, s
    assert s["max_concurrent_requests"] >= 3, s["max_concurrent_requests"]
