"""Locust's rows stay self-consistent: no exact median beside rounded percentiles."""

from __future__ import annotations

from locust.stats import RequestStats

from locust_llm.metrics.locust_grid import on_locust_grid


def _row(values):
    stats = RequestStats()
    e = stats.get("/v1/chat/completions", "POST")
    for v in values:
        e.log(v, 0)
    return e


def test_exact_values_give_a_median_above_p99_on_locusts_own_row():
    e = _row([1310.54, 1311.2, 1312.0, 1310.9])
    assert e.median_response_time > e.get_response_time_percentile(0.99)  # Locust's quirk


def test_values_on_locusts_grid_keep_the_row_ordered():
    e = _row([on_locust_grid(v) for v in (1310.54, 1311.2, 1312.0, 1310.9)])
    med, p95, p99 = (e.median_response_time, *map(e.get_response_time_percentile, (0.95, 0.99)))
    assert e.min_response_time <= med <= p95 <= p99 <= e.max_response_time
    assert med == p95 == 1300
    assert [on_locust_grid(v) for v in (47.4, 147.0, 3432.0, 58760.0)] == [47, 150, 3400, 59000]
