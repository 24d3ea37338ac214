"""The report reads records by the summary's definitions: the same samples, the same numbers."""

from __future__ import annotations

import random

import numpy as np
import pytest

from locust_llm.metrics.collector import Collector
from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.summary import summarize
from locust_llm.report.load import samples_from_records


def _results(n: int, seed: int) -> list[LLMResult]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        chunks = rng.randint(2, 40)
        itl = [rng.uniform(5, 50) for _ in range(chunks - 1)]
        ttft = rng.uniform(50, 400)
        r = LLMResult(
            "chat", t_start=1_763_790_000.0 + i * 0.05, ttft=ttft, itl=itl, e2e=ttft + sum(itl),
            output_tokens=chunks + rng.choice([0, 0, 3]), token_chunks=chunks, prompt_tokens=9,
        )  # fmt: skip
        r.warmup = i < 10  # the warm-up is left out of both
        if i % 3 == 0:  # kernel stamps: tokens that shared a read have unknown gaps
            r.timestamps = "kernel"
            r.shared = sorted(rng.sample(range(chunks), k=min(3, chunks)))
        if i % 11 == 5:
            r.error, r.ttft, r.e2e, r.itl = "HTTP 503: queue full", None, None, []
        out.append(r)
    return out


def test_report_samples_equal_the_summary():
    results = _results(300, seed=4)
    c = Collector()
    for r in results:
        c.add(r)
    s = summarize(c)
    smp = samples_from_records([r.to_record() for r in results])
    assert s["itl_excluded"] > 0  # the exclusion is exercised
    for m in ("ttft", "tpot", "itl", "e2el"):
        x = smp.metric(m)
        assert len(x) == s[f"count_{m}"], m
        assert float(np.mean(x)) == pytest.approx(s[f"mean_{m}_ms"], rel=1e-12), m
        for p in (50, 90, 99):
            assert float(np.percentile(x, p)) == pytest.approx(s[f"p{p}_{m}_ms"], rel=1e-12), m
    assert smp.errors == s["errors"]
