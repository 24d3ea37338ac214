"""Token spreading: the numpy path gives exactly the loop's numbers (times, buckets, shares)."""

from __future__ import annotations

import random
from array import array

import pytest

from locust_llm.metrics import spread
from locust_llm.metrics.record import LLMResult


class _Window:
    def __init__(self) -> None:
        self.tokens_arrived: dict[int, int] = {}
        self.chunks_ms: dict[int, int] = {}
        self.chunk_times = array("d")


@pytest.mark.parametrize("seed", range(40))
def test_numpy_path_equals_the_loop(seed, monkeypatch):
    rng = random.Random(seed)
    c = rng.randint(1, 700)
    r = LLMResult(name="x", model="m")
    r.t_start, r.ttft, r.token_chunks = 1.7e9 + rng.random() * 100, rng.random() * 500, c
    # coalesced tokens (gap 0) beside jittered ones; usage counts above and below the chunks
    r.itl = [rng.choice([0.0, rng.lognormvariate(2, 1)]) for _ in range(c - 1)]
    r.output_tokens = rng.choice([c, 3 * c + 1, c // 2])
    loop, vec = _Window(), _Window()
    monkeypatch.setattr(spread, "VECTOR_FROM", 10**9)
    spread.spread_tokens(loop, r)
    monkeypatch.setattr(spread, "VECTOR_FROM", 1)
    spread.spread_tokens(vec, r)
    assert vec.chunk_times.tolist() == loop.chunk_times.tolist()
    assert vec.chunks_ms == loop.chunks_ms and vec.tokens_arrived == loop.tokens_arrived
    assert sum(vec.tokens_arrived.values()) == r.output_tokens
