"""Bulk ITL logging must leave Locust's stats row exactly as per-sample logging would."""

import random

from locust.stats import RequestStats

from locust_llm.plugin import log_many


def test_log_many_equals_per_sample_log():
    rng = random.Random(3)
    values = [rng.lognormvariate(3, 1) for _ in range(500)] + [0.004, 150.0, 3432.0]
    a, b = RequestStats(), RequestStats()
    ea, eb = a.get("ITL", "LLM"), b.get("ITL", "LLM")
    for v in values:
        ea.log(v, 0)
    log_many(eb, values)
    for field in ("num_requests", "min_response_time", "max_response_time", "response_times"):
        assert getattr(ea, field) == getattr(eb, field), field
    assert abs(ea.total_response_time - eb.total_response_time) < 1e-6
    assert sum(ea.num_reqs_per_sec.values()) == sum(eb.num_reqs_per_sec.values())
    assert ea.get_response_time_percentile(0.99) == eb.get_response_time_percentile(0.99)
