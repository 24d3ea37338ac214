"""An adapter on Locust's stats internals: log many samples into one ``StatsEntry`` at once."""

from __future__ import annotations

from collections import Counter
from typing import Any

import locust.stats

from locust_llm.metrics.locust_grid import on_locust_grid

__all__ = ["log_many"]


def log_many(entry: Any, values: list[float], on_grid: bool = False) -> None:
    """``entry.log(v, 0)`` for every value, in bulk: one ITL sample per token made Locust's
    per-call bookkeeping (clock read, cache check) ~15 % of the client's CPU per token.
    With ``on_grid`` each value is logged as :func:`on_locust_grid` rounds it, rounding each
    once (not once to put it on the grid and again for Locust's histogram key).
    Falls back to per-sample ``log`` if Locust's internals are not the ones this was written
    against (2.4x: ``bucket_response_time`` and these ``StatsEntry`` fields)."""
    bucket = getattr(locust.stats, "bucket_response_time", None)
    if bucket is None or not hasattr(entry, "response_times") or len(values) < 2:
        for v in values:
            entry.log(on_locust_grid(v) if on_grid else v, 0)
        return
    if on_grid:
        keys = list(map(bucket, values))  # grid values are their own keys
        entry.log(float(keys[0]), 0)  # time bookkeeping and cache rotation, once
        rest: list[Any] = keys[1:]
    else:
        entry.log(values[0], 0)
        rest = values[1:]
    n = len(rest)
    entry.num_requests += n
    entry.num_reqs_per_sec[int(entry.last_request_timestamp)] += n
    entry.total_response_time += float(sum(rest)) if on_grid else sum(rest)
    entry.min_response_time = min(entry.min_response_time, float(min(rest)))
    entry.max_response_time = max(entry.max_response_time, float(max(rest)))
    rt = entry.response_times
    if on_grid:
        for k, c in Counter(rest).items():
            rt[k] += c
    else:
        for k in map(bucket, rest):
            rt[k] += 1
