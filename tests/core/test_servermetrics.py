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
