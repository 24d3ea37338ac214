"""The LLM tab's GPU series (``/llm/gpu``, grown from the sampler's file) and its saturation
banner, on a real Locust web UI served on 127.0.0.1 and drawn by headless Chromium."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import gevent
import pytest
from locust import events
from locust.env import Environment

from locust_llm.metrics.live_saturation import LiveSaturation
from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.saturation import detect
from locust_llm.plugin import runtime
from locust_llm.users import OpenAIChatUser
from tests.report.browser import ARTIFACTS, skip_without_browser
from tests.web.conftest import free_port
from tests.web.test_webui_run import _driver

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gpu" / "two_gpus.jsonl"
LINES = [ln for ln in FIXTURE.read_text().splitlines() if ln.endswith("}")]  # 22 whole lines


class _User(OpenAIChatUser):
    host = "http://127.0.0.1:1"


@pytest.fixture()
def env(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["locust"])
    e = Environment(user_classes=[_User], events=events)
    e.create_local_runner()
    e.port = free_port()
    e.create_web_ui("127.0.0.1", e.port)
    rt = runtime(e)
    e.events.init.fire(environment=e, runner=e.runner, web_ui=e.web_ui)
    for i in range(20):
        rt.collector.add(
            LLMResult(
                name="x", t_start=1_700_000_000 + i / 4, ttft=50.0, ttft_content=50.0,
                itl=[20.0] * 3, e2e=110.0, prompt_tokens=8, output_tokens=4, token_chunks=4,
                status=200,
            )
        )  # fmt: skip
    path = tmp_path / "gpu_telemetry.jsonl"
    path.write_text("\n".join(LINES[:10]) + "\n" + LINES[10][:30])  # a line still being written
    rt.gpu_sampler = SimpleNamespace(path=path)
    rt.stack = SimpleNamespace(
        replicas=[SimpleNamespace(name="r0", gpus=[0]), SimpleNamespace(name="r1", gpus=[1])]
    )
    yield e, rt, path
    e._llm_scraper.stop()
    e.runner.quit()
    e.web_ui.stop()


def _rows(lines):
    return [json.loads(x) for x in lines]


def test_gpu_endpoint_serves_the_series_and_then_only_what_is_new(env) -> None:
    e, rt, path = env
    cl = e.web_ui.app.test_client()
    first = cl.get("/llm/gpu").get_json()
    g0, g1 = first["gpus"]
    want0 = [r for r in _rows(LINES[:10]) if r["gpu"] == 0]
    assert (g0["gpu"], g0["replica"], g1["replica"]) == (0, "r0", "r1")
    assert g0["t"] == [r["t"] for r in want0] and g0["util"] == [r["util"] for r in want0]
    assert g0["power_w"] == [r["power_w"] for r in want0] and g1["sm_clock_mhz"][0] == 360
    assert first["last_t"] == want0[-1]["t"]
    offset = e._llm_web._gpu[0].offset
    with path.open("a") as fh:  # the sampler finishes its line and writes the rest
        fh.write(LINES[10][30:] + "\n" + "\n".join(LINES[11:]) + "\n")
    new = cl.get(f"/llm/gpu?since={first['last_t']}").get_json()
    rest0 = [r for r in _rows(LINES[10:]) if r["gpu"] == 0]
    assert new["gpus"][0]["t"] == [r["t"] for r in rest0]  # only the new samples
    assert new["gpus"][0]["util"] == [r["util"] for r in rest0]
    assert e._llm_web._gpu[0].offset == path.stat().st_size > offset  # read from the offset
    assert cl.get(f"/llm/gpu?since={new['last_t']}").get_json()["gpus"][0]["t"] == []
    rt.gpu_sampler = None
    assert cl.get("/llm/gpu").get_json() == {"gpus": [], "last_t": None, "off": True}


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_saturation_banner_and_gpu_charts_in_chromium(env) -> None:
    skip_without_browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    e, rt, _ = env
    live = LiveSaturation(rt.collector, lambda: None)
    rt.live_saturation = live
    gevent.sleep(0.5)  # the web UI's server greenlet binds its port
    base = f"http://127.0.0.1:{e.port}/llm/"
    driver, profile = _driver()
    try:
        wait = WebDriverWait(driver, 30)
        driver.get(base)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-updated"))
        banner = driver.find_element(By.ID, "saturated")
        assert not banner.is_displayed()  # not saturated: no banner
        # a queue that grows without bound: the detector's own verdict, as the live check keeps it
        flat, growing = [8.0] * 20, [8.0 + 1.5 * i for i in range(20)]
        rows = [{"t": 1000 + i, "requests": 5, "in_flight": f, "ttft_p50_ms": 50.0}
                for i, f in enumerate(flat + growing)]  # fmt: skip
        live.verdict = detect(rows)
        assert live.verdict.detected
        e._llm_web.invalidate()
        wait.until(lambda d: d.find_element(By.ID, "saturated").is_displayed())
        text = driver.find_element(By.ID, "saturated").text
        assert text.startswith("SATURATED") and live.verdict.reason in text
        color = driver.execute_script(
            "return getComputedStyle(document.getElementById('saturated')).backgroundColor"
        )
        assert color == "rgb(198, 40, 40)"
        traces = driver.execute_script(
            "return ['chart-gpu-util','chart-gpu-power'].map(id => "
            "document.getElementById(id).data.map(t => [t.name, t.y]))"
        )
        util, power = traces
        assert [n for n, _ in util] == ["GPU 0 (r0)", "GPU 1 (r1)"]
        want0 = [r for r in _rows(LINES[:10]) if r["gpu"] == 0]
        assert util[0][1] == [r["util"] for r in want0]
        assert power[1][1][0] == 100.0
        assert driver.find_element(By.ID, "gpu-section").is_displayed()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "web-llm-saturated.png"))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
