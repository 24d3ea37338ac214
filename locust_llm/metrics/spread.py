"""Where a request's output tokens fall in time: per-ms chunk counts, per-100 ms token counts.

Runs once per finished request over every token chunk, so at 100k+ tokens/s it is a share of
the client's CPU. Long streams go through numpy (one cumulative sum, integer shares, counts per
distinct bucket); short ones through a plain loop, where numpy's per-call cost would dominate.
Both give identical numbers: the times are the same sequence of float additions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from locust_llm.metrics.record import LLMResult

__all__ = ["spread_tokens"]

#: chunks from which the numpy path is cheaper than the loop
VECTOR_FROM = 128


def spread_tokens(w: Any, r: LLMResult) -> None:
    """Attribute output tokens to the 100 ms buckets their chunks arrived in (peak tok/s) and
    count chunks per ms; append each chunk's time to ``w.chunk_times`` when it keeps them.

    When usage counts differ from chunks, chunk i gets ``⌊(i+1)·n/c⌋ − ⌊i·n/c⌋`` tokens:
    whole numbers, so per-second sums are exact and do not depend on the order in which
    requests were added or windows merged (fractional shares made the summary differ in
    the last bits between a local and a master/worker run).
    """
    chunks = r.token_chunks
    if r.ttft is None or not chunks:
        return
    t = r.t_start + r.ttft / 1000.0
    if len(r.itl) + 1 >= VECTOR_FROM:
        _spread_np(w, r, t, chunks)
        return
    n = r.output_tokens
    ta = w.tokens_arrived
    ch = w.chunks_ms
    times = w.chunk_times
    if times is not None:
        times.append(t)
    ms = int(t * 1000)
    ch[ms] = ch.get(ms, 0) + 1
    done = n // chunks
    ds = ms // 100
    ta[ds] = ta.get(ds, 0) + done
    for i, gap in enumerate(r.itl, 2):
        t += gap / 1000.0  # the same float steps as vLLM's token times
        if times is not None:
            times.append(t)
        ms = int(t * 1000)
        ch[ms] = ch.get(ms, 0) + 1
        ds = ms // 100
        upto = i * n // chunks
        ta[ds] = ta.get(ds, 0) + upto - done
        done = upto


def _spread_np(w: Any, r: LLMResult, t0: float, chunks: int) -> None:
    steps = np.empty(len(r.itl) + 1)
    steps[0] = t0
    steps[1:] = r.itl
    steps[1:] /= 1000.0
    t = np.cumsum(steps)  # sequential: t0, t0 + g1/1000, (t0 + g1/1000) + g2/1000, ...
    if w.chunk_times is not None:
        w.chunk_times.frombytes(t.tobytes())
    ms = (t * 1000).astype(np.int64)  # int() truncates; all positive
    ch = w.chunks_ms
    keys, counts = np.unique(ms, return_counts=True)
    for k, c in zip(keys.tolist(), counts.tolist(), strict=True):
        ch[k] = ch.get(k, 0) + c
    n = r.output_tokens
    upto = np.arange(1, len(t) + 1, dtype=np.int64) * n // chunks
    upto[1:] -= upto[:-1].copy()  # tokens of each chunk
    keys, where = np.unique(ms // 100, return_inverse=True)
    sums = np.bincount(where, weights=upto).astype(np.int64)  # integers < 2**53: exact
    ta = w.tokens_arrived
    for k, c in zip(keys.tolist(), sums.tolist(), strict=True):
        ta[k] = ta.get(k, 0) + c
