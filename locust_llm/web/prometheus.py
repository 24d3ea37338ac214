"""``/llm/metrics``: the client-side view in Prometheus text format, next to vLLM's ``/metrics``.

Why a custom collector instead of ``prometheus_client.Histogram`` objects fed per request: the
numbers already live in the collector's mergeable sketches (which the master merges from the
workers), so the exposition is a *translation* done at scrape time — nothing is added to the
per-request path, and local, ``--processes`` and master/worker runs expose the same totals.

The ``le`` edges are vLLM's own (``vllm/v1/metrics/loggers.py``) with a few finer ones below
10 ms, so a Grafana panel can put ``locust_llm_time_to_first_token_seconds`` and
``vllm:time_to_first_token_seconds`` side by side with the same buckets. A sketch bucket is
counted under the first edge at or above its representative value (within 1 % of every sample
in it), so a bucket count is exact except for samples within 1 % of an edge.

"Reset stats" empties the collector, so counters drop to zero: Prometheus' ``rate()`` treats
that as a counter reset, which is what it is.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from locust_llm.metrics.distribution import Distribution
from locust_llm.metrics.sketch import LogHistogram

__all__ = ["EDGES", "HISTOGRAMS", "histogram_buckets", "LLMPromCollector", "render"]

PREFIX = "locust_llm_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)
_TTFT += (7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
_TOKEN = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075)
_TOKEN += (0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
_E2E = (0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0)
_E2E += (60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)

# sketch name -> (exposed name without prefix, help, upper edges in seconds)
HISTOGRAMS: dict[str, tuple[str, str, tuple[float, ...]]] = {
    "ttft": (
        "time_to_first_token_seconds",
        "Client-side time to first token chunk (vLLM's TTFT definition)",
        _TTFT,
    ),
    "itl": (
        "inter_token_latency_seconds",
        "Client-side gap between consecutive token chunks, pooled over requests",
        _TOKEN,
    ),
    "tpot": (
        "time_per_output_token_seconds",
        "Client-side (E2E - TTFT) / (output tokens - 1), one sample per request",
        _TOKEN,
    ),
    "e2el": (
        "e2e_request_latency_seconds",
        "Client-side time from sending the request to its last token chunk",
        _E2E,
    ),
    "pooling": (
        "pooling_request_latency_seconds",
        "Client-side time from sending an embeddings/rerank request to its whole answer",
        _E2E,
    ),
}
EDGES = {k: v[2] for k, v in HISTOGRAMS.items()}


def histogram_buckets(
    h: LogHistogram | Distribution, edges: Sequence[float]
) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs (seconds) for a sketch in milliseconds, ending in +Inf.

    Exact while the distribution still holds its samples. Otherwise each sketch bucket's representative value is ``upper * (1 - rel_error)``: the value the
    sketch itself reports for it, within ``rel_error`` of every sample in the bucket.
    """
    exact = h.cumulative([e * 1000.0 for e in edges]) if hasattr(h, "cumulative") else None
    if exact is not None:  # the samples themselves: the same counts numpy would give
        return [(_le(e), n) for e, n in zip(edges, exact, strict=True)] + [("+Inf", h.count)]
    counts = [0] * (len(edges) + 1)
    shrink = 1.0 - h.rel_error
    for upper_ms, n in h.buckets():
        v = upper_ms * shrink / 1000.0
        counts[bisect.bisect_left(edges, v)] += n
    out: list[tuple[str, float]] = []
    acc = 0
    for edge, n in zip(edges, counts, strict=False):
        acc += n
        out.append((_le(edge), acc))
    out.append(("+Inf", h.count))  # == acc + counts[-1]
    return out


def _le(x: float) -> str:
    """Prometheus' own float formatting for ``le`` (``0.1``, ``1.0``, ``2560.0``)."""
    return repr(float(x)) if math.isfinite(x) else "+Inf"


class LLMPromCollector:
    """A ``prometheus_client`` custom collector over a snapshot function.

    ``snapshot()`` returns ``(merged_window, extras)`` where ``extras`` may hold ``users``
    and ``in_flight``; it is called once per scrape.
    """

    def __init__(self, snapshot: Callable[[], tuple[Any, dict[str, float]]]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        return []  # no describe at registration: the snapshot may not exist yet

    def collect(self) -> Iterable[Metric]:
        w, extras = self._snapshot()
        for key, (name, doc, edges) in HISTOGRAMS.items():
            h = w.sketches[key]
            yield HistogramMetricFamily(
                PREFIX + name, doc, buckets=histogram_buckets(h, edges), sum_value=h.sum / 1000.0
            )
        req = CounterMetricFamily(
            PREFIX + "requests", "Finished LLM requests by outcome", labels=["outcome"]
        )
        req.add_metric(["completed"], w.completed)
        req.add_metric(["failed"], w.failed)
        req.add_metric(["aborted"], w.aborted)
        req.add_metric(["cancelled"], w.cancelled)
        yield req
        yield CounterMetricFamily(
            PREFIX + "output_tokens",
            "Output tokens of completed requests (usage.completion_tokens)",
            value=w.output_tokens,
        )
        yield CounterMetricFamily(
            PREFIX + "input_tokens",
            "Prompt tokens of completed requests (usage.prompt_tokens)",
            value=w.input_tokens,
        )
        yield CounterMetricFamily(
            PREFIX + "cached_tokens",
            "Prompt tokens the server reported cached (usage.prompt_tokens_details.cached_tokens)",
            value=w.cached_tokens,
        )
        yield CounterMetricFamily(
            PREFIX + "cached_prompt_tokens",
            "Prompt tokens of the requests that reported cached_tokens (the hit rate's base)",
            value=w.cached_prompt_tokens,
        )
        yield CounterMetricFamily(
            PREFIX + "pooling_items",
            "Inputs embedded or documents scored by completed embeddings/rerank requests",
            value=w.pool_items,
        )
        if "users" in extras:
            yield GaugeMetricFamily(PREFIX + "users", "Running Locust users", value=extras["users"])
        if "in_flight" in extras:
            yield GaugeMetricFamily(
                PREFIX + "in_flight_requests",
                "Most requests in flight during the last complete second",
                value=extras["in_flight"],
            )


def render(snapshot: Callable[[], tuple[Any, dict[str, float]]]) -> bytes:
    """The exposition text for one snapshot (a fresh registry: no global state, no clashes)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LLMPromCollector(snapshot))
    return generate_latest(registry)
