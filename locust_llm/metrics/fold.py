"""Folding one finished request into a :class:`Window`: what each field of a window counts.

Kept apart from the collector so the run's per-second windows and the per-group windows
(by request name, model, turn) are filled by the same code, hence agree field for field.
"""

from __future__ import annotations

from collections.abc import Callable

from locust_llm.metrics.pooling import fold_pooling
from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.spread import spread_tokens
from locust_llm.metrics.window import Window

__all__ = ["fold"]


def fold(
    w: Window, r: LLMResult, good: Callable[[LLMResult], bool] | None = None, slots: bool = True
) -> None:
    """Fold one finished request into ``w``. ``slots=False`` leaves out the event slots and
    exact event times (a group's window: one per group for the whole run, so per-millisecond
    slots would grow with the run; the run's peaks come from the run's own windows)."""
    sk = w.sketches
    w.note_send(r.t_start, r.queue_time, r.schedule_lag)
    end = r.t_start + ((r.e2e if r.e2e is not None else r.stream_closed) or 0.0) / 1000.0
    if end > w.last_end:
        w.last_end = end
    if r.aborted:
        w.aborted += 1
        return
    if r.cancelled:
        return w.add_cancelled(r)
    if r.error is not None:
        w.failed += 1
        key = r.error_key or r.error
        if len(w.errors) >= 100 and key not in w.errors:
            key = "other errors"
        w.errors[key] = w.errors.get(key, 0) + 1
        if key not in w.error_examples:
            w.error_examples[key] = r.error
        w.pool_failed += r.items is not None
        return
    if r.items is not None:  # embeddings/rerank: no stream, no token metrics
        return fold_pooling(w, r)
    w.completed += 1
    w.input_tokens += r.prompt_tokens or 0
    w.output_tokens += r.output_tokens
    w.images += r.images
    w.image_bytes += r.image_bytes
    if r.midstream_error is not None:
        w.midstream_errors += 1
    src = "src_" + r.output_tokens_source
    setattr(w, src, getattr(w, src) + 1)
    if r.cached_tokens is not None:
        w.cached_tokens += r.cached_tokens
        w.cached_prompt_tokens += r.prompt_tokens or 0
    if r.reasoning_tokens is not None:
        w.reasoning_tokens += r.reasoning_tokens
    if r.ttfot is not None:
        sk["ttfot"].add(r.ttfot)
    if r.chunk_tokens:
        w.add_token_weighted(r)
    if r.max_tokens:
        w.requested_tokens += r.max_tokens
        w.requested_output += r.output_tokens
    if r.ttft is not None:
        sk["ttft"].add(r.ttft)
    if r.ttft_content is not None:
        sk["ttft_content"].add(r.ttft_content)
    if r.e2e is not None:
        sk["e2el"].add(r.e2e)
    tpot = r.tpot
    if tpot is not None:
        sk["tpot"].add(tpot)
    if r.itl:
        exact = r.exact_itl()
        sk["itl"].add_many(exact)
        w.itl_excluded += len(r.itl) - len(exact)
    if r.timestamps == "kernel":
        w.stamped_tokens += r.token_chunks
        w.own_stamps += r.own_stamps or 0
        w.shared_tokens += r.shared_reads or 0
        w.first_shared += 1 if r.shared and r.shared[0] == 0 else 0
        w.end_shared += _end_only(r)
        w.stamp_fallbacks += r.stamp_fallbacks or 0
        if r.read_lateness:
            sk["read_lateness"].add_many(r.read_lateness)
        if r.send_lateness is not None:
            sk["send_lateness"].add(r.send_lateness)
    if good is not None and good(r):
        w.good += 1
    if r.t_start < w.first_ok:
        w.first_ok = r.t_start
    if not slots:
        return
    if r.e2e is not None:  # vLLM: a successful request is active from start to last chunk
        m0 = int(r.t_start * 1000)
        m1 = int((r.t_start + r.e2e / 1000.0) * 1000)
        w.starts_ms[m0] = w.starts_ms.get(m0, 0) + 1
        w.ends_ms[m1] = w.ends_ms.get(m1, 0) + 1
        if w.spans is not None:
            w.spans.append(r.t_start)
            w.spans.append(r.t_start + r.e2e / 1000.0)
    spread_tokens(w, r)


def _end_only(r: LLMResult) -> int:
    """1 when the last token shares its read only with the stream's end, the usage chunk and
    ``[DONE]`` a server writes right after it: no client reads those apart, so like the role
    chunk with the first token it is the server's doing, not a late read."""
    shared, last = r.shared, r.token_chunks - 1
    if not shared or last < 1 or shared[-1] != last:
        return 0
    return 1 if len(shared) == 1 or shared[-2] != last - 1 else 0
