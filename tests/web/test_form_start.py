"""The web UI's START, pressed in headless Chromium: defaults, typed values, bad values.

``locust -f locustfiles/chat.py`` with nothing else (the built-in emulator starts), no
``--autostart``: the test fills the form like a user and clicks START.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

from tests.report.browser import skip_without_browser
from tests.web.conftest import LOCUST, ROOT, free_port
from tests.web.test_webui_run import _driver


class WebUI:
    def __init__(self, tmp, extra=()) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "locust.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [LOCUST, "-f", str(ROOT / "locustfiles" / "chat.py"), "--web-port", str(self.port),
             "--web-host", "127.0.0.1", *extra],
            cwd=tmp, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip

    def json(self, path: str):
        with urllib.request.urlopen(self.base + path, timeout=5) as r:
            return json.loads(r.read())

    def wait(self, pred, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                last = pred()
                if last:
                    return last
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}; last {last!r}\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def close(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()


@pytest.fixture()
def web_ui(tmp_path):
    ui = WebUI(tmp_path)
    yield ui
    ui.close()


def _rows(ui) -> dict[str, int]:
    return {s["name"]: s["num_requests"] for s in ui.json("/stats/requests")["stats"]}


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_start_button_with_defaults_typed_and_bad_values(web_ui) -> None:
    skip_without_browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    web_ui.wait(lambda: web_ui.json("/llm/summary"), 30, "the web UI")
    driver, profile = _driver()
    try:
        driver.get(web_ui.base + "/")
        wait = WebDriverWait(driver, 20)

        def button(text):
            return wait.until(
                lambda d: [b for b in d.find_elements(By.TAG_NAME, "button") if b.text == text]
            )[0]

        def field(name):
            return wait.until(lambda d: d.find_element(By.NAME, name))

        def type_into(name, text):
            el = field(name)
            el.clear()
            el.send_keys(text)

        button("Custom parameters").click()
        # only options a new test can change are in the form; help shows 1%, not 1%%
        names = {e.get_attribute("name") for e in driver.find_elements(By.CSS_SELECTOR, "input")}
        for hidden in ("llmBackend", "llmTp", "llmReplicas", "llmVllmCmd", "llmServeArgs",
                       "llmLb", "llmRunDir", "llmRecords", "llmSummary", "llmMetricsUrl"):  # fmt: skip
            assert hidden not in names, hidden
        assert {"llmSlo", "llmMaxTokens", "llmModel"} <= names
        form_text = wait.until(
            lambda d: t if "Llm Slo" in (t := d.find_element(By.TAG_NAME, "form").text) else None
        )
        assert "error_rate<=1%," in form_text and "%%" not in form_text

        # a bad SLO typed into the form: a clear message in the page, no request sent
        type_into("userCount", "2")
        type_into("spawnRate", "2")
        type_into("llmSlo", "ttft_p97<=800ms")
        button("START").click()
        wait.until(lambda d: "p97 is not measured" in d.find_element(By.TAG_NAME, "body").text)
        assert "/v1/chat/completions" not in _rows(web_ui)

        # typed values that are fine: this run uses them
        type_into("llmSlo", "ttft_p95<=60000ms, error_rate<=5%")
        type_into("llmMaxTokens", "8")
        button("START").click()
        rows = web_ui.wait(
            lambda: (r := _rows(web_ui)).get("/v1/chat/completions", 0) >= 3 and r, 40, "requests"
        )
        assert rows.get("TTFT", 0) > 0 and rows.get("ITL", 0) > 0, rows
        # 8 tokens a request: 7 gaps each (requests in flight have logged none yet)
        assert rows["ITL"] <= 7 * rows["TTFT"], rows
        slo = web_ui.json("/llm/slo")
        assert [r["expr"] for r in slo] == ["ttft_p95<=60000ms", "error_rate<=5%"], slo
        # no request answered 500 (the access log's status field; log times hold "500" too)
        assert '" 500 ' not in web_ui.log() and "Traceback" not in web_ui.log(), web_ui.log()
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_empty_form_fields_post_as_the_form_does(web_ui) -> None:
    """Every option the form shows, left at its default (empty text for the SLO field)."""
    web_ui.wait(lambda: web_ui.json("/llm/summary"), 30, "the web UI")
    form = ("user_count=2&spawn_rate=2&llm_slo=&llm_model=&llm_max_tokens=4&llm_prompt_tokens=128"
            "&llm_warmup=&llm_warmup_requests=0&llm_ignore_eos=false")  # fmt: skip
    req = urllib.request.Request(web_ui.base + "/swarm", data=form.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        answer = json.loads(r.read())
    assert answer["success"], answer
    web_ui.wait(lambda: _rows(web_ui).get("TTFT", 0) > 0, 30, "TTFT rows")
