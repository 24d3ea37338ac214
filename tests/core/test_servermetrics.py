"""vLLM /metrics and nginx stub_status parsing shared by both scrapers."""

import pytest

from locust_llm.servermetrics import parse_stub_status, parse_vllm_metrics

OLD_VLLM = """# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="a"} 0.25
vllm:gpu_cache_usage_perc{model_name="b"} 0.5
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="a"} 2.0
vllm:num_requests_running{model_name="b"} 3.0
# TYPE vllm:generation_tokens counter
vllm:generation_tokens_total{model_name="a"} 10.0
vllm:generation_tokens_created{model_name="a"} 1.7e9
"""


def test_older_vllm_kv_name_is_read_and_created_samples_ignored():
    m = parse_vllm_metrics(OLD_VLLM)
    assert m == {"kv_cache_usage_perc": 0.5, "num_requests_running": 5.0,
                 "generation_tokens_total": 10.0}  # fmt: skip


def test_stub_status_and_a_page_that_is_not_one():
    page = ("Active connections: 3 \nserver accepts handled requests\n 10 10 42 \n"
            "Reading: 0 Writing: 2 Waiting: 1 \n")  # fmt: skip
    assert parse_stub_status(page)["requests"] == 42
    with pytest.raises(ValueError, match="not a stub_status page"):
        parse_stub_status("<html>nginx</html>")


PREFIX = """# TYPE vllm:prefix_cache_queries counter
vllm:prefix_cache_queries_total{engine="0",model_name="a"} 300.0
# TYPE vllm:prefix_cache_hits counter
vllm:prefix_cache_hits_total{engine="0",model_name="a"} 96.0
"""


def test_prefix_cache_counters_and_hit_rate_per_replica():
    from locust_llm.servermetrics import prefix_cache_by_replica

    m = parse_vllm_metrics(PREFIX)
    assert m == {"prefix_cache_queries_total": 300.0, "prefix_cache_hits_total": 96.0}
    q, h = "prefix_cache_queries_total", "prefix_cache_hits_total"
    samples = [
        {"t": 2.0, "replica": "r0", q: 400.0, h: 196.0},
        {"t": 1.0, "replica": "r0", **m},  # out of order in the file: sorted by time
        {"t": 1.5, "replica": "r0", "error": "URLError: refused"},  # a failed scrape
        {"t": 3.0, "replica": "r0", q: 50.0, h: 10.0},  # restarted: grew from 0 to these
        {"t": 1.0, "replica": "r1", q: 10.0, h: 0.0},  # one sample: no growth seen
        {"t": 1.0, "replica": "old", "num_requests_running": 1.0},  # no prefix counters
        {"t": 1.0, "nginx": {"active": 1}},
    ]
    got = prefix_cache_by_replica(samples)
    assert got["r0"] == {"queries": 150.0, "hits": 110.0, "hit_rate": 110.0 / 150.0}
    assert got["r1"] == {"queries": 0.0, "hits": 0.0, "hit_rate": None}
    assert set(got) == {"r0", "r1"}
