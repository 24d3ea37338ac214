"""``/llm/metrics`` translation: sketches -> cumulative Prometheus buckets, parsed back."""

from __future__ import annotations

import random

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from locust_llm.metrics.collector import Collector
from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.sketch import LogHistogram
from locust_llm.web.prometheus import EDGES, HISTOGRAMS, histogram_buckets, render


def _families(text: bytes) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def _far_from_edges(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Drop samples within 2 % of an edge: the sketch may put those on either side."""
    e = np.asarray(edges) * 1000.0
    rel = np.min(np.abs(values[:, None] / e[None, :] - 1.0), axis=1)
    return values[rel > 0.02]


@pytest.mark.parametrize("metric", sorted(HISTOGRAMS))
def test_buckets_match_exact_counts(metric: str) -> None:
    rng = np.random.default_rng(1)
    raw = rng.lognormal(np.log(80.0), 1.2, 20_000)  # ms, spanning several decades
    values = _far_from_edges(raw, EDGES[metric])
    h = LogHistogram()
    h.add_many(values.tolist())
    pairs = histogram_buckets(h, EDGES[metric])
    assert pairs[-1] == ("+Inf", len(values))
    for le, count in pairs[:-1]:
        assert count == int(np.sum(values <= float(le) * 1000.0)), le
    counts = [c for _, c in pairs]
    assert counts == sorted(counts)  # cumulative


def _collector() -> Collector:
    c = Collector()
    rng = random.Random(3)
    for i in range(200):
        itl = [rng.uniform(5, 40) for _ in range(15)]
        ttft = rng.uniform(30, 900)
        c.add(
            LLMResult(
                name="x", t_start=1_700_000_000 + i / 10, ttft=ttft, ttft_content=ttft, itl=itl,
                e2e=ttft + sum(itl), prompt_tokens=10, output_tokens=16, token_chunks=16,
                status=200, cached_tokens=(i % 3) * 4 if i % 2 else None,
            )
        )  # fmt: skip
    c.add(LLMResult(name="x", t_start=1_700_000_001, error="HTTP 500: <b>boom</b>", status=500))
    for i in range(20):  # embeddings requests: their own latency, items, no token metrics
        c.add(
            LLMResult(
                name="/v1/embeddings", t_start=1_700_000_002 + i / 10, e2e=rng.uniform(5, 50),
                prompt_tokens=30, items=3, status=200,
            )
        )  # fmt: skip
    return c


def test_render_parses_back_with_counters_and_sums() -> None:
    c = _collector()
    w = c.merged()
    fams = _families(render(lambda: (w, {"users": 4.0, "in_flight": 3.0})))
    for key, (name, _doc, edges) in HISTOGRAMS.items():
        fam = fams[f"locust_llm_{name}"]
        assert fam.type == "histogram"
        samples = {(s.name, s.labels.get("le")): s.value for s in fam.samples}
        h = w.sketches[key]
        assert samples[(f"locust_llm_{name}_count", None)] == h.count
        assert samples[(f"locust_llm_{name}_sum", None)] == pytest.approx(h.sum / 1000.0)
        assert samples[(f"locust_llm_{name}_bucket", "+Inf")] == h.count
        les = [s.labels["le"] for s in fam.samples if s.name.endswith("_bucket")]
        assert len(les) == len(edges) + 1
    assert fams["locust_llm_time_to_first_token_seconds"].samples  # TTFT present
    req = {s.labels["outcome"]: s.value for s in fams["locust_llm_requests"].samples}
    assert req == {"completed": 220, "failed": 1, "aborted": 0, "cancelled": 0}
    assert fams["locust_llm_output_tokens"].samples[0].value == 200 * 16
    assert fams["locust_llm_input_tokens"].samples[0].value == 200 * 10 + 20 * 30
    # the hit rate's two counters, the summary's own figures (only requests that reported it)
    cached = sum((i % 3) * 4 for i in range(1, 200, 2))
    assert fams["locust_llm_cached_tokens"].samples[0].value == cached == w.cached_tokens
    assert fams["locust_llm_cached_prompt_tokens"].samples[0].value == 100 * 10
    assert fams["locust_llm_pooling_items"].samples[0].value == 20 * 3
    pool = {s.name: s.value for s in fams["locust_llm_pooling_request_latency_seconds"].samples}
    assert pool["locust_llm_pooling_request_latency_seconds_count"] == 20
    assert fams["locust_llm_users"].samples[0].value == 4
    assert fams["locust_llm_in_flight_requests"].samples[0].value == 3
    assert all(n.startswith("locust_llm_") for n in fams)


def test_empty_collector_renders_zeroes() -> None:
    w = Collector().merged()
    fams = _families(render(lambda: (w, {})))
    ttft = fams["locust_llm_time_to_first_token_seconds"]
    assert all(s.value == 0 for s in ttft.samples)
    assert "locust_llm_users" not in fams


def test_buckets_are_exact_counts_while_samples_are_kept():
    from locust_llm.metrics.distribution import Distribution

    rng = np.random.default_rng(3)
    x = rng.lognormal(np.log(50.0), 0.8, 5000)  # ms
    d = Distribution()
    d.add_many(x.tolist())
    edges = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]
    got = histogram_buckets(d, edges)
    want = [int(np.sum(x / 1000.0 <= e)) for e in edges]
    assert [n for _, n in got[:-1]] == want and got[-1] == ("+Inf", 5000)
