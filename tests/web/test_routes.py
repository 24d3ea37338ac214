"""The ``/llm`` routes on a real Locust web UI app (server not started), via Flask's client."""

from __future__ import annotations

import csv
import io
import sys

import gevent
import orjson
import pytest
from locust import events
from locust.env import Environment

from locust_llm.checks import parse_slo
from locust_llm.metrics.record import LLMResult
from locust_llm.plugin import runtime
from locust_llm.users import OpenAIChatUser
from locust_llm.web.scrape import ServerScraper, Target, parse_stub_status, parse_vllm_metrics

MARKUP = "<script>window.__pwned=1</script>"


class _User(OpenAIChatUser):
    host = "http://127.0.0.1:1"


@pytest.fixture()
def env(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["locust"])  # the web UI parses argv for its extra options
    e = Environment(user_classes=[_User], events=events)
    e.create_local_runner()
    e.create_web_ui("127.0.0.1", 0, delayed_start=True)
    rt = runtime(e)
    rt.slos = [parse_slo("ttft_p95<=800ms"), parse_slo("itl_p99<=1ms")]
    e.events.init.fire(environment=e, runner=e.runner, web_ui=e.web_ui)  # as Locust's main does
    assert e._llm_web is not None
    c = rt.collector
    for i in range(30):
        c.add(
            LLMResult(
                name="x", t_start=1_700_000_000 + i / 5, ttft=50.0 + i, ttft_content=50.0 + i,
                itl=[20.0] * 9, e2e=230.0 + i, prompt_tokens=8, output_tokens=10,
                token_chunks=10, status=200,
            )
        )  # fmt: skip
    c.add(LLMResult(name="x", t_start=1_700_000_002, error=f"HTTP 500: {MARKUP}", status=500))
    yield e
    e._llm_scraper.stop()
    e.runner.quit()


def test_json_endpoints_agree(env) -> None:
    cl = env.web_ui.app.test_client()
    s = cl.get("/llm/summary").get_json()
    assert s["completed"] == 30 and s["failed"] == 1
    assert s["p50_ttft_ms"] == pytest.approx(64.0, rel=0.02)
    assert "histograms" not in s and "intervals" not in s
    assert s["errors"] == {f"HTTP 500: {MARKUP}": 1}  # JSON carries the text; the page escapes
    slo = cl.get("/llm/slo").get_json()
    assert [r["passed"] for r in slo] == [True, False]
    rows = cl.get("/llm/intervals").get_json()
    ts = [r["t"] for r in rows]
    assert ts == list(range(1_700_000_000, 1_700_000_000 + len(ts)))  # one row per second
    assert sum(r["requests"] for r in rows) == 30
    assert cl.get("/llm/intervals?since=1700000004").get_json()[0]["t"] == 1_700_000_004
    text = cl.get("/llm/intervals.csv").get_data(as_text=True)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == len(rows) and int(parsed[0]["requests"]) == rows[0]["requests"]
    full = orjson.loads(cl.get("/llm/summary.json").get_data())
    assert full["completed"] == 30 and "histograms" in full and "intervals" in full
    live = cl.get("/llm/live").get_json()
    assert live["summary"]["completed"] == 30 and live["intervals"] == rows
    assert live["intervals_from"] is None  # a first poll: every row
    # a poll that saw this view gets only what changed since (nothing yet), and a request
    # finishing later brings the tail from its second on; merged, it is the full list again
    q = f"/llm/live?epoch={live['epoch']}&seq={live['seq']}"
    same = cl.get(q).get_json()
    assert same["intervals"] == [] and same["intervals_from"] == rows[-1]["t"] + 1
    env.llm.collector.add(
        LLMResult(name="x", t_start=1_700_000_005.5, ttft=40.0, ttft_content=40.0, itl=[20.0],
                  e2e=60.0, prompt_tokens=8, output_tokens=2, token_chunks=2, status=200)
    )  # fmt: skip
    env._llm_web.invalidate()
    later = cl.get(q).get_json()
    assert later["intervals_from"] is not None and later["seq"] > live["seq"]
    merged = [r for r in rows if r["t"] < later["intervals_from"]] + later["intervals"]
    assert merged == cl.get("/llm/intervals").get_json()  # (all seconds still open here)
    stale = cl.get(f"/llm/live?epoch={live['epoch'] + 7}&seq=1").get_json()
    assert stale["intervals_from"] is None and stale["intervals"] == merged
    m = cl.get("/llm/metrics")
    assert m.mimetype == "text/plain" and b"locust_llm_requests_total" in m.get_data()


def test_locust_tab_table_and_page(env) -> None:
    cl = env.web_ui.app.test_client()
    assert env.web_ui.template_args["extended_tabs"] == [{"title": "LLM", "key": "llm"}]
    body = cl.get("/stats/requests").get_json()
    (ext,) = body["extended_stats"]
    names = [r["name"] for r in ext["data"]]
    assert ext["key"] == "llm" and names == ["TTFT", "TPOT", "ITL", "E2E"]
    s = cl.get("/llm/summary").get_json()
    assert ext["data"][0]["p95"] == round(s["p95_ttft_ms"], 2)
    index = cl.get("/").get_data()
    assert index.count(b"./llm/static/tab.js") == 1
    page = cl.get("/llm/").get_data(as_text=True)
    assert "./static/plotly.min.js" in page and "cdn" not in page.lower()
    js = cl.get("/llm/static/plotly.min.js")
    assert js.status_code == 200 and len(js.get_data()) > 1_000_000
    assert ".innerHTML" not in cl.get("/llm/static/llm.js").get_data(as_text=True)


def test_reset_empties_everything(env) -> None:
    cl = env.web_ui.app.test_client()
    assert cl.get("/llm/summary").get_json()["completed"] == 30
    env.runner.stats.reset_all()
    env.events.reset_stats.fire()
    assert cl.get("/llm/summary").get_json()["completed"] == 0
    assert cl.get("/llm/intervals").get_json() == []


VLLM_METRICS = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="a"} 3.0
vllm:num_requests_running{engine="0",model_name="b"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="a"} 7.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="a"} 0.25
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="a"} 1234.0
vllm:generation_tokens_created{engine="0",model_name="a"} 1.7e9
"""

STUB = (  # nginx writes trailing spaces on three of the four lines
    "Active connections: 5 \n"
    "server accepts handled requests\n"
    " 10 10 42 \n"
    "Reading: 0 Writing: 3 Waiting: 2 \n"
)


def test_parsers() -> None:
    assert parse_vllm_metrics(VLLM_METRICS) == {
        "running": 5.0,
        "waiting": 7.0,
        "kv_cache_usage": 0.25,
        "generation_tokens": 1234.0,
    }
    assert parse_stub_status(STUB) == {
        "active": 5, "accepts": 10, "handled": 10, "requests": 42,
        "reading": 0, "writing": 3, "waiting": 2,
    }  # fmt: skip


def test_scraper_history_is_bounded_and_errors_kept(tmp_path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(
        b'{"upstream":"127.0.0.1:1"}\n{"upstream":"127.0.0.1:2, 127.0.0.1:1"}\n{"upstream":'
    )

    def fetch(url: str) -> str:
        if "bad" in url:
            raise ConnectionRefusedError(f"{MARKUP} refused")
        return STUB if "nginx" in url else VLLM_METRICS

    targets = [
        Target("r0", "http://r0/metrics", "vllm"),
        Target("bad", "http://bad/metrics", "vllm"),
        Target("nginx", "http://nginx/status", "nginx"),
    ]
    sc = ServerScraper(lambda: targets, access_log=lambda: log, fetch=fetch)
    for _ in range(310):
        sc.poll_once()
    snap = sc.snapshot(history=True)
    by = {t["name"]: t for t in snap["targets"]}
    assert by["r0"]["ok"] and by["r0"]["values"]["running"] == 5
    assert len(by["r0"]["history"]) == 300
    assert not by["bad"]["ok"] and "refused" in by["bad"]["error"]
    assert by["nginx"]["values"]["requests"] == 42
    assert snap["upstream_requests"] == {"127.0.0.1:1": 2}  # partial last line not yet read
    gevent.sleep(0)


def test_live_views_never_serve_credentials_of_the_host(env) -> None:
    env.host = "http://user:s3cret@127.0.0.1:1"
    env._llm_web.invalidate()
    cl = env.web_ui.app.test_client()
    paths = ("/llm/", "/llm/summary", "/llm/live", "/llm/summary.json", "/llm/slo",
             "/llm/server", "/llm/intervals", "/llm/intervals.csv", "/llm/metrics")  # fmt: skip
    for path in paths:
        body = cl.get(path).get_data(as_text=True)
        assert "s3cret" not in body, path
    assert cl.get("/llm/summary").get_json()["meta"]["host"] == "http://127.0.0.1:1"


def test_a_poll_of_an_unchanged_collector_reuses_the_summary(env) -> None:
    data = env._llm_web
    first = data.summary()
    data._clock = lambda: 1e12  # long past the time-based cache
    data._cache = {k: (1e12 - 1.0, v, x) for k, (_t, v, x) in data._cache.items()}
    assert data.summary()["completed"] == first["completed"]
    calls = []
    real = env.llm.summary
    env.llm.summary = lambda **kw: calls.append(1) or real(**kw)
    data.summary()
    assert calls == []  # nothing new: no rebuild
    env.llm.collector.add(LLMResult(name="x", t_start=1_700_000_003, error="boom", status=500))
    assert data.summary()["failed"] == 2 and calls == [1]


def test_scraper_prefix_cache_hit_rate_since_the_test_started() -> None:
    seen = iter([(100, 10), (300, 90), (500, 190), (550, 200), (650, 250)])

    def fetch(url: str) -> str:
        q, h = next(seen)
        return (
            "# TYPE vllm:prefix_cache_queries counter\n"
            f'vllm:prefix_cache_queries_total{{engine="0",model_name="m"}} {q}\n'
            "# TYPE vllm:prefix_cache_hits counter\n"
            f'vllm:prefix_cache_hits_total{{engine="0",model_name="m"}} {h}\n'
        )

    sc = ServerScraper(lambda: [Target("r0", "http://r0/metrics", "vllm")], fetch=fetch)
    for _ in range(3):
        sc.poll_once()
    row = sc.snapshot()["targets"][0]
    assert row["prefix_cache"] == {"queries": 400.0, "hits": 180.0, "hit_rate": 0.45}
    sc.reset_counters()  # a new test: growth counts from the next sample on
    for _ in range(2):
        sc.poll_once()
    assert sc.snapshot()["targets"][0]["prefix_cache"]["hit_rate"] == 0.5
    gevent.sleep(0)
