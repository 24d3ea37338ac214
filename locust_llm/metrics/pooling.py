"""Pooling requests (embeddings, rerank) in the windows and in the summary.

A pooling request has no token stream: one latency (request sent to answer read), the
prompt tokens the server reports and the number of items (inputs embedded, documents
scored). It counts as a request like any other (``completed``, ``failed``, ``errors``,
``total_input_tokens``), so run-level judgements (no data, error rate, exit code) see it, but
its latency goes to its own ``pooling`` distribution, not ``e2el``: a generation's end-to-end
latency and an embedding's are different quantities and a mixed run must not blend them.
"""

from __future__ import annotations

from typing import Any

from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.window import Window

__all__ = ["fold_pooling", "pooling_fields"]

_PERCENTILES = (50, 90, 95, 99)


def fold_pooling(w: Window, r: LLMResult) -> None:
    """Fold one successful pooling request into its window (failures are counted already)."""
    w.completed += 1
    w.pool_requests += 1
    w.pool_items += r.items or 0
    w.pool_input_tokens += r.prompt_tokens or 0
    w.input_tokens += r.prompt_tokens or 0
    if r.e2e is not None:
        w.sketches["pooling"].add(r.e2e)


def pooling_fields(w: Window, duration: float) -> dict[str, Any] | None:
    """The summary's ``pooling`` section (None when the run sent no pooling request).

    Rates are over the run's measured ``duration`` (the summary's, first dispatch to last
    completion), so they compare with ``request_throughput``; percentiles are numpy's over
    the exact samples (the same :class:`Distribution` as every other latency).
    """
    if not (w.pool_requests or w.pool_failed):
        return None
    d = w.sketches["pooling"]

    def rate(x: float) -> float:
        return x / duration if duration > 0 else 0.0

    qs = d.quantiles([p / 100 for p in _PERCENTILES])
    out: dict[str, Any] = {
        "requests": w.pool_requests,
        "failed": w.pool_failed,
        "total_items": w.pool_items,
        "total_input_tokens": w.pool_input_tokens,
        "request_throughput": rate(w.pool_requests),
        "items_per_s": rate(w.pool_items),
        "input_tokens_per_s": rate(w.pool_input_tokens),
        "mean_latency_ms": d.mean if d.count else 0.0,
        "median_latency_ms": qs[0],
        "std_latency_ms": d.std if d.count else 0.0,
        "min_latency_ms": d.min if d.count else 0.0,
        "max_latency_ms": d.max if d.count else 0.0,
    }
    for p, v in zip(_PERCENTILES, qs, strict=True):
        out[f"p{p}_latency_ms"] = v
    out["count_latency"] = d.count
    return out
