"""vLLM's Prometheus metrics, exposed through a prometheus_client registry.

Names, labels (``model_name``, ``engine``) and histogram bucket edges are vLLM's
(vllm/v1/metrics/loggers.py). Counters are created without the ``_total`` suffix because
prometheus_client appends it, giving exactly vLLM's ``vllm:prompt_tokens_total`` etc.
Histograms are a small custom collector: ITL is observed once per token, and the emulator
writes up to a million tokens per second, so ``observe_many`` (one bisect per write, not per
token) matters; the exposition is still produced by prometheus_client's ``generate_latest``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
               10.0, 20.0, 40.0, 80.0)  # fmt: skip
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
                           50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
FINISH_REASONS = ("stop", "length", "abort")
# vLLM 0.32's label values: PromptTokenStats.ALL_SOURCES and CacheHitSource
PROMPT_SOURCES = ("local_compute", "local_cache_hit", "external_kv_transfer")
CACHE_HIT_SOURCES = ("device", "host", "p2p", "disk", "external_unspecified")

prometheus_client.disable_created_metrics()


class BucketHistogram:
    """Cumulative-bucket histogram with a cheap ``observe_many`` (gevent: no locks needed)."""

    def __init__(self, edges: Iterable[float]) -> None:
        self.edges = tuple(edges)
        self.counts = [0] * (len(self.edges) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.edges, value)] += 1
        self.sum += value

    def observe_many(self, value: float, n: int) -> None:
        """n observations of the same value (tokens written in one send share a gap)."""
        if n > 0:
            self.counts[bisect_left(self.edges, value)] += n
            self.sum += value * n

    def buckets(self) -> list[tuple[str, float]]:
        out, acc = [], 0
        for edge, c in zip(self.edges, self.counts):
            acc += c
            out.append((repr(float(edge)), acc))
        out.append(("+Inf", acc + self.counts[-1]))
        return out


class _HistogramCollector(Collector):
    def __init__(self, labels: list[str], hists: dict[str, tuple[str, BucketHistogram]]) -> None:
        self.labels = labels
        self.hists = hists

    def collect(self):
        for name, (doc, h) in self.hists.items():
            fam = HistogramMetricFamily(name, doc, labels=["model_name", "engine"])
            fam.add_metric(self.labels, h.buckets(), h.sum)
            yield fam

    def describe(self):
        return []


class EngineMetrics:
    """All metrics of one emulator; ``render()`` is the /metrics body."""

    def __init__(self, model_name: str, state: Callable[[], tuple[int, int, float]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._state = state
        labels = ["model_name", "engine"]
        values = [model_name, "0"]
        r = self.registry
        self.running = Gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
                             labels, registry=r).labels(*values)  # fmt: skip
        self.waiting = Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
                             labels, registry=r).labels(*values)  # fmt: skip
        self.kv_usage = Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
                              labels, registry=r).labels(*values)  # fmt: skip
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.",
                                     labels, registry=r).labels(*values)  # fmt: skip
        self.generation_tokens = Counter("vllm:generation_tokens", "Number of generation tokens processed.",
                                         labels, registry=r).labels(*values)  # fmt: skip
        self.preemptions = Counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.",
                                   labels, registry=r).labels(*values)  # fmt: skip
        success = Counter("vllm:request_success", "Count of successfully processed requests.",
                          labels + ["finished_reason"], registry=r)  # fmt: skip
        self.success = {reason: success.labels(*values, reason) for reason in FINISH_REASONS}
        self.prefix_queries = Counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of "
                                      "number of queried tokens.", labels, registry=r).labels(*values)  # fmt: skip
        self.prefix_hits = Counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of "
                                   "cached tokens.", labels, registry=r).labels(*values)  # fmt: skip
        # the emulator has only the local (device) cache: other sources and tiers stay 0
        self.prompt_cached = Counter("vllm:prompt_tokens_cached", "Number of cached prompt tokens "
                                     "(local + external).", labels, registry=r).labels(*values)  # fmt: skip
        by_source = Counter("vllm:prompt_tokens_by_source", "Number of prompt tokens by source.",
                            labels + ["source"], registry=r)  # fmt: skip
        self.prompt_by_source = {k: by_source.labels(*values, k) for k in PROMPT_SOURCES}
        by_tier = Counter("vllm:prompt_tokens_cached_by_source", "Prefix-cache hit tokens by the "
                          "cache tier that supplied them: device (local HBM), host (offloaded to "
                          "DRAM), disk, p2p (transferred from another vLLM instance) or "
                          "external_unspecified. Counted at admission; sums to "
                          "vllm:prefix_cache_hits + vllm:external_prefix_cache_hits.",
                          labels + ["source"], registry=r)  # fmt: skip
        self.cached_by_tier = {k: by_tier.labels(*values, k) for k in CACHE_HIT_SOURCES}
        self.ttft = BucketHistogram(TTFT_BUCKETS)
        self.itl = BucketHistogram(ITL_BUCKETS)
        self.e2e = BucketHistogram(REQUEST_LATENCY_BUCKETS)
        self.queue = BucketHistogram(REQUEST_LATENCY_BUCKETS)
        r.register(
            _HistogramCollector(
                values,
                {
                    "vllm:time_to_first_token_seconds": (
                        "Histogram of time to first token in seconds.",
                        self.ttft,
                    ),
                    "vllm:inter_token_latency_seconds": (
                        "Histogram of inter-token latency in seconds.",
                        self.itl,
                    ),
                    "vllm:e2e_request_latency_seconds": (
                        "Histogram of e2e request latency in seconds.",
                        self.e2e,
                    ),
                    "vllm:request_queue_time_seconds": (
                        "Histogram of time spent in WAITING phase for request.",
                        self.queue,
                    ),
                },
            )
        )

    def render(self) -> bytes:
        """Prometheus text exposition, gauges sampled from the engine now."""
        running, waiting, kv = self._state()
        self.running.set(running)
        self.waiting.set(waiting)
        self.kv_usage.set(kv)
        return generate_latest(self.registry)

    def prefix_lookup(self, queried: int, hits: int) -> None:
        """A request's first admission looked its prompt up in the prefix cache (as vLLM,
        counted only while prefix caching is on, and not again after a preemption)."""
        self.prefix_queries.inc(queried)
        self.prefix_hits.inc(hits)
        self.cached_by_tier["device"].inc(hits)

    def prefilled(self, prompt_tokens: int, cached: int) -> None:
        """A request's prefill ended (its first token exists): vLLM's prompt token counters."""
        self.prompt_tokens.inc(prompt_tokens)
        self.prompt_cached.inc(cached)
        self.prompt_by_source["local_compute"].inc(prompt_tokens - cached)
        self.prompt_by_source["local_cache_hit"].inc(cached)

    def finished(self, reason: str | None, ttft: float | None, e2e: float, queue: float) -> None:
        """Record one finished request (any finish reason, abort included). ``reason`` None:
        the client disconnected; vLLM 0.32 aborts such a request in its front end, before any
        finished-request stats, so only its TTFT (observed when the first token came) counts."""
        if ttft is not None:
            self.ttft.observe(ttft)
        if reason is None:
            return
        self.success.get(reason, self.success["abort"]).inc()
        self.e2e.observe(e2e)
        self.queue.observe(queue)


CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
