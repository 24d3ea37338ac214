"""The run summary, with ``vllm bench serve``'s field names, built from merged windows.

Throughput is over the measured window: first dispatch (after warm-up) to last completion,
as vLLM's ``benchmark_duration``. Percentiles are numpy's over the samples while they are kept
(the sketch's, within its bound, beyond), never Locust's rounded response-time dict.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from locust_llm.metrics.collector import LATENCY_METRICS, Collector, Window
from locust_llm.metrics.health import client_health
from locust_llm.metrics.nodata import no_data_reason

__all__ = ["PERCENTILES", "summarize", "metric_fields", "interval_rows"]

PERCENTILES = (50, 90, 95, 99, 99.9)


def _pct_label(p: float) -> str:
    return f"{p:g}"


def metric_fields(name: str, window: Window) -> dict[str, float]:
    """``mean_/median_/std_/min_/max_/pNN_{name}_ms`` for one metric."""
    h = window.sketches[name]
    qs = h.quantiles([p / 100 for p in PERCENTILES])
    out = {
        f"mean_{name}_ms": h.mean,
        f"median_{name}_ms": qs[0],
        f"std_{name}_ms": h.std,
        f"min_{name}_ms": h.min if h.count else 0.0,
        f"max_{name}_ms": h.max if h.count else 0.0,
    }
    for p, v in zip(PERCENTILES, qs, strict=True):
        out[f"p{_pct_label(p)}_{name}_ms"] = v
    out[f"count_{name}"] = h.count
    return out


def interval_rows(collector: Collector) -> list[dict[str, Any]]:
    """One row per wall-clock second, for charts (web UI, report)."""
    return collector.rows()


def usage_fields(w: Window) -> dict[str, Any]:
    """locust-llm's extras from usage: mid-stream errors, prefix-cache hits, reasoning
    tokens, tokens per chunk, and where the output token counts came from."""
    sources = {"usage": w.src_usage, "tokenizer": w.src_tokenizer, "chunks": w.src_chunks}
    used = [k for k, n in sources.items() if n]
    return {
        "midstream_errors": w.midstream_errors,
        "output_tokens_source": used[0] if len(used) == 1 else ("mixed" if used else None),
        "output_tokens_sources": sources,
        "total_cached_tokens": w.cached_tokens,
        "prefix_cache_hit_rate": (
            w.cached_tokens / w.cached_prompt_tokens if w.cached_prompt_tokens else None
        ),
        "total_reasoning_tokens": w.reasoning_tokens,
        "mean_tokens_per_chunk": (
            w.usage_chunk_tokens / w.usage_chunks if w.usage_chunks else None
        ),
    }


def summarize_range(collector: Collector, start: float, end: float) -> dict[str, Any]:
    """The summary's request, token and latency fields for requests that finished in
    [start, end): one step of a stepped sweep. Throughput is over the step's own duration."""
    w = collector.merged(int(start), int(end))
    duration = max(end - start, 0.0)

    def rate(x: float) -> float:
        return x / duration if duration > 0 else 0.0

    out: dict[str, Any] = {
        "start": start,
        "end": end,
        "duration": duration,
        "completed": w.completed,
        "failed": w.failed,
        "aborted": w.aborted,
        "total_input_tokens": w.input_tokens,
        "total_output_tokens": w.output_tokens,
        "request_throughput": rate(w.completed),
        "output_throughput": rate(w.output_tokens),
        "total_token_throughput": rate(w.input_tokens + w.output_tokens),
    }
    for m in ("ttft", "ttft_content", "tpot", "itl", "e2el", "queue_time"):
        out.update(metric_fields(m, w))
    return out


def _buckets(slots: dict[int, int], scale: int, origin: float) -> tuple[np.ndarray, np.ndarray]:
    """(vLLM bucket, count) per slot: ``int(t - min_start_time)`` with t the slot's start."""
    if not slots:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    keys = np.fromiter(slots.keys(), dtype=np.float64, count=len(slots))
    counts = np.fromiter(slots.values(), dtype=np.int64, count=len(slots))
    rel = keys / scale - origin
    return np.where(rel >= 0, rel.astype(np.int64), -1), counts


def peak_tokens_per_s(collector: Collector, origin: float, by: str = "chunks_ms") -> float:
    """vLLM's ``max_output_tokens_per_s``: the most token chunks (one each, whatever usage
    says) in one 1 s bucket, buckets counted from the first successful request's start.
    ``by="tokens_arrived"`` counts usage tokens instead (the token-based peak)."""
    if origin == math.inf:
        return 0.0
    events = collector.events() if by == "chunks_ms" else None
    if events is not None:  # exact: the same float arithmetic as vLLM's
        k = (np.frombuffer(events[0], dtype=np.float64) - origin).astype(np.int64)
        k = k[k >= 0]
        return float(np.bincount(k).max()) if len(k) else 0.0
    k, n = _buckets(collector.slots(by), 1000 if by == "chunks_ms" else 10, origin)
    keep = k >= 0
    if not keep.any():
        return 0.0
    return float(np.bincount(k[keep], weights=n[keep]).max())


def peak_concurrency(collector: Collector, origin: float) -> int:
    """vLLM's ``max_concurrent_requests``: the most successful requests active in one 1 s
    bucket, a request counting in every bucket from the one it started in to the one its
    last chunk arrived in (so short requests are never missed)."""
    if origin == math.inf:
        return 0
    events = collector.events()
    if events is not None and len(events[1]):
        span = np.frombuffer(events[1], dtype=np.float64).reshape(-1, 2) - origin
        first, last = span[:, 0].astype(np.int64), span[:, 1].astype(np.int64)
        size = int(last.max()) + 2
        # +1 from the bucket a request started in, -1 after the one its last chunk arrived in
        delta = np.bincount(first, minlength=size) - np.bincount(last + 1, minlength=size)
        return int(np.cumsum(delta).max())
    ks, ns = _buckets(collector.slots("starts_ms"), 1000, origin)
    ke, ne = _buckets(collector.slots("ends_ms"), 1000, origin)
    if not len(ks):
        return 0
    size = int(max(ks.max(), ke.max() if len(ke) else 0)) + 2
    starts = np.bincount(np.maximum(ks, 0), weights=ns, minlength=size)
    ends = np.bincount(np.maximum(ke, 0), weights=ne, minlength=size)
    # active in bucket b: started at or before b, and not ended before b
    active = np.cumsum(starts) - np.concatenate(([0.0], np.cumsum(ends)[:-1]))
    return int(active.max())


def summarize(
    collector: Collector,
    *,
    meta: dict[str, Any] | None = None,
    include_intervals: bool = True,
    include_histograms: bool = True,
) -> dict[str, Any]:
    """The summary dict (see docs/ARCHITECTURE.md). Pure: call it at quit or on demand."""
    w = collector.merged()
    duration = 0.0
    if w.first_start != math.inf and w.last_end != -math.inf:
        duration = max(w.last_end - w.first_start, 0.0)
    inflight = {s: row["in_flight"] for s, row in collector.frozen_rows.items()}
    inflight.update({s: win.inflight_max for s, win in collector.windows.items()})

    def rate(x: float) -> float:
        return x / duration if duration > 0 else 0.0

    total = w.completed + w.failed + w.aborted
    out: dict[str, Any] = {
        "duration": duration,
        "completed": w.completed,
        "failed": w.failed,
        "aborted": w.aborted,
        "total_requests": total,
        # aborted = cancelled by the client (users stopped mid-request): not a server error
        "error_rate": w.failed / (w.completed + w.failed) if (w.completed + w.failed) else 0.0,
        "total_input_tokens": w.input_tokens,
        "total_output_tokens": w.output_tokens,
        "request_throughput": rate(w.completed),
        "request_goodput": rate(w.good) if collector.good is not None else None,
        "output_throughput": rate(w.output_tokens),
        "total_token_throughput": rate(w.input_tokens + w.output_tokens),
        "max_output_tokens_per_s": peak_tokens_per_s(collector, w.first_ok),
        "max_concurrent_requests": peak_concurrency(collector, w.first_ok),
        # locust-llm's own: usage tokens (not chunks) per 1 s bucket, same buckets
        "max_output_tokens_per_s_by_tokens": peak_tokens_per_s(
            collector, w.first_ok, "tokens_arrived"
        ),
        # client view: requests in flight at dispatch (failed and warm-up included)
        "max_inflight_requests": max(inflight.values()) if inflight else 0,
        "total_requested_output_tokens": w.requested_tokens,
        "output_tokens_vs_requested": (
            w.requested_output / w.requested_tokens if w.requested_tokens else None
        ),
    }
    out["no_data_reason"] = no_data_reason(out)
    out.update(usage_fields(w))
    for m in LATENCY_METRICS:
        out.update(metric_fields(m, w))
    out.update(client_health(w, out))
    out["errors"] = dict(sorted(w.errors.items(), key=lambda kv: -kv[1]))
    # one full message per key: the key counts, the example says what the server sent
    out["error_examples"] = {k: w.error_examples[k] for k in out["errors"] if k in w.error_examples}
    out["started_at"] = w.first_start if w.first_start != math.inf else None
    out["ended_at"] = w.last_end if w.last_end != -math.inf else None
    out["last_started_at"] = w.last_start if w.last_start != -math.inf else None
    if include_intervals:
        out["intervals"] = interval_rows(collector)
    if include_histograms:
        out["histograms"] = {m: h.sketch.to_dict() for m, h in w.sketches.items()}
    out["meta"] = dict(meta or {})
    return out
