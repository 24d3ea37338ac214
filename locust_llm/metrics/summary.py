"""The run summary, with ``vllm bench serve``'s field names, built from merged windows.

Throughput is over the measured window: first dispatch (after warm-up) to last completion,
as vLLM's ``benchmark_duration``. Percentiles are numpy's over the samples while they are kept
(the sketch's, within its bound, beyond), never Locust's rounded response-time dict.
"""

from __future__ import annotations

import math
from typing import Any

from locust_llm.metrics.collector import LATENCY_METRICS, Collector, Window
from locust_llm.metrics.health import client_health
from locust_llm.metrics.nodata import no_data_reason
from locust_llm.metrics.pooling import pooling_fields
from locust_llm.metrics.rollup import Fold

__all__ = ["PERCENTILES", "summarize", "metric_fields", "interval_rows", "totals", "group_fields"]

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
        "total_images": w.images,
        "total_image_bytes": w.image_bytes,
        "mean_tokens_per_chunk": (
            w.usage_chunk_tokens / w.usage_chunks if w.usage_chunks else None
        ),
    }


# the latency metrics of a step or a group (the run's summary has every one)
_PART_METRICS = ("ttft", "ttft_content", "tpot", "itl", "e2el", "queue_time")


def totals(w: Window, duration: float, goodput: bool = False) -> dict[str, Any]:
    """Request and token counts and their rates over ``duration`` seconds: the run's, a
    step's and a group's, from one place."""

    def rate(x: float) -> float:
        return x / duration if duration > 0 else 0.0

    done = w.completed + w.failed
    return {
        "duration": duration,
        "completed": w.completed,
        "failed": w.failed,
        "aborted": w.aborted,
        # hung up on by the client on purpose (--llm-cancel-*): outside every vLLM field
        "cancelled": w.cancelled,
        "cancelled_output_tokens": w.cancelled_tokens,
        "total_requests": done + w.aborted + w.cancelled,
        # aborted = cancelled by the client (users stopped mid-request): not a server error
        "error_rate": w.failed / done if done else 0.0,
        "total_input_tokens": w.input_tokens,
        "total_output_tokens": w.output_tokens,
        "request_throughput": rate(w.completed),
        "request_goodput": rate(w.good) if goodput else None,
        "output_throughput": rate(w.output_tokens),
        "total_token_throughput": rate(w.input_tokens + w.output_tokens),
    }


def span(w: Window) -> float:
    """First dispatch to last completion of the requests in ``w`` (vLLM's duration)."""
    if w.first_start != math.inf and w.last_end != -math.inf:
        return max(w.last_end - w.first_start, 0.0)
    return 0.0


def summarize_range(collector: Collector, start: float, end: float) -> dict[str, Any]:
    """The summary's request, token and latency fields for requests that finished in
    [start, end): one step of a stepped sweep. Throughput is over the step's own duration."""
    w = collector.merged(int(start), int(end))
    out: dict[str, Any] = {"start": start, "end": end}
    out.update(totals(w, max(end - start, 0.0), collector.good is not None))
    for m in _PART_METRICS:
        out.update(metric_fields(m, w))
    return out


def group_fields(w: Window, goodput: bool = False) -> dict[str, Any]:
    """One group's summary (a request name, a model, a turn): the run summary's request,
    token and latency fields over the group's requests; rates over the group's own span."""
    out = totals(w, span(w), goodput)
    for m in _PART_METRICS:
        out.update(metric_fields(m, w))
    out["errors"] = dict(sorted(w.errors.items(), key=lambda kv: -kv[1]))
    return out


def by_group(collector: Collector) -> dict[str, dict[str, dict[str, Any]]]:
    """``by_name``, ``by_model``, ``by_turn``: only the groupings that saw several values."""
    goodput = collector.good is not None
    out = {}
    for kind in collector.groups.kinds():
        groups = collector.groups.grouped(kind)
        keys = sorted(groups, key=lambda k: (int(k) if k.isdigit() else 1 << 30, k))
        out[f"by_{kind}"] = {k: group_fields(groups[k], goodput) for k in keys}
    return out


def summarize(
    collector: Collector,
    *,
    meta: dict[str, Any] | None = None,
    include_intervals: bool = True,
    include_histograms: bool = True,
    include_groups: bool = True,
    fold: Fold | None = None,
) -> dict[str, Any]:
    """The summary dict (see docs/ARCHITECTURE.md). Pure: call it at quit or on demand.
    ``fold``: the collector's windows already folded (the live view keeps most of it between
    polls); by default every window is folded here."""
    f = fold if fold is not None else Fold.of(collector)
    w = f.total
    duration = span(w)
    out: dict[str, Any] = totals(w, duration, f.goodput)
    out.update(
        {
            # vLLM's peaks; locust-llm's usage tokens (not chunks) in the same buckets; and
            # the client view: requests in flight at dispatch (failed and warm-up included)
            **f.peaks(),
            "total_requested_output_tokens": w.requested_tokens,
            "output_tokens_vs_requested": (
                w.requested_output / w.requested_tokens if w.requested_tokens else None
            ),
        }
    )
    out["no_data_reason"] = no_data_reason(out)
    out.update(usage_fields(w))
    out["pooling"] = pooling_fields(w, duration)
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
        out["intervals"] = f.chart_rows()
    if include_groups:
        out.update(by_group(collector))
    if include_histograms:
        out["histograms"] = {m: h.sketch.to_dict() for m, h in w.sketches.items()}
    out["meta"] = dict(meta or {})
    return out
