import io
import json

from locust_llm.scenarios.scrape import Scraper, Target, parse_stub_status, parse_vllm_metrics

PROM = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="a"} 3.0
vllm:num_requests_running{engine="0",model_name="b"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="a"} 7.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="a"} 0.25
vllm:kv_cache_usage_perc{engine="0",model_name="b"} 0.5
# TYPE vllm:request_success_total counter
vllm:request_success_total{finished_reason="stop",model_name="a"} 4.0
vllm:request_success_total{finished_reason="length",model_name="a"} 6.0
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{model_name="a"} 640.0
"""

STUB = (
    "Active connections: 291 \n"
    "server accepts handled requests\n"
    " 16630948 16630948 31070465 \n"
    "Reading: 6 Writing: 179 Waiting: 106 \n"
)


def test_parse_vllm_metrics_sums_label_sets_and_maxes_kv():
    m = parse_vllm_metrics(PROM)
    assert m["num_requests_running"] == 5 and m["num_requests_waiting"] == 7
    assert m["kv_cache_usage_perc"] == 0.5 and m["request_success_total"] == 10
    assert m["generation_tokens_total"] == 640


def test_parse_stub_status():
    assert parse_stub_status(STUB) == {
        "active": 291,
        "accepts": 16630948,
        "handled": 16630948,
        "requests": 31070465,
        "reading": 6,
        "writing": 179,
        "waiting": 106,
    }


def test_dead_replica_is_recorded_not_raised(tmp_path):
    s = Scraper(
        [Target(name="r0", url="http://127.0.0.1:9/metrics", model="m")],
        "http://127.0.0.1:9/x",
        tmp_path / "m.jsonl",
        timeout=0.2,
    )
    buf = io.StringIO()
    s.scrape_once(buf)
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert lines[0]["replica"] == "r0" and "error" in lines[0] and "t" in lines[0]
    assert "nginx_error" in lines[1]
