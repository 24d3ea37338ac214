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


def test_log_many_on_grid_equals_logging_each_grid_value():
    from locust_llm.metrics.locust_grid import on_locust_grid

    rng = random.Random(5)
    values = [rng.lognormvariate(3, 1.5) for _ in range(500)] + [0.4, 99.5, 149.9, 3450.0]
    a, b = RequestStats(), RequestStats()
    ea, eb = a.get("ITL", "LLM"), b.get("ITL", "LLM")
    for v in values:
        ea.log(on_locust_grid(v), 0)
    log_many(eb, values, on_grid=True)
    for field in ("num_requests", "min_response_time", "max_response_time", "response_times"):
        assert getattr(ea, field) == getattr(eb, field), field
    assert ea.total_response_time == eb.total_response_time
    assert type(eb.min_response_time) is float and type(eb.max_response_time) is float
