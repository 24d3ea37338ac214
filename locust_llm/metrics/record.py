"""One finished LLM request: what ``chat()``/``complete()`` return and what ``--llm-records`` writes.

Durations are milliseconds, ``t_start`` is Unix epoch seconds (docs/ARCHITECTURE.md). Times are
measured with ``time.perf_counter()`` deltas; only ``t_start`` comes from the wall clock, so
records from several machines can be put on one time axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["LLMResult"]

# fields written to JSONL, in order; the rest (text, timing internals) stay in memory
_RECORD_FIELDS = (
    "id",
    "request_id",
    "name",
    "model",
    "turn",
    "session_id",
    "t_start",
    "queue_time",
    "ttft",
    "ttft_content",
    "ttfot",
    "itl",
    "e2e",
    "stream_closed",
    "prompt_tokens",
    "max_tokens",
    "output_tokens",
    "output_tokens_source",
    "token_chunks",
    "content_chunks",
    "cached_tokens",
    "reasoning_tokens",
    "finish_reason",
    "status",
    "error",
    "error_kind",
    "error_key",
    "midstream_error",
    "aborted",
    "cancelled",
    "images",
    "image_bytes",
    "warmup",
    "timestamps",
    "shared",
    "shared_reads",
    "stamp_fallbacks",
    "read_lateness_max",
    "send_lateness",
    "items",
    "schedule_lag",
    "trace_index",
    "trace_loop",
)


@dataclass(slots=True)
class LLMResult:
    """A streamed request's outcome, with vLLM's metric definitions."""

    name: str
    model: str = ""
    id: str | None = None
    request_id: str | None = None  # sent as X-Request-Id: vLLM's request id in its logs
    # multi-turn: 0-based turn within the conversation, and the conversation's id (sent as
    # X-Session-Id, so a proxy can keep a conversation on one replica's prefix cache)
    turn: int | None = None
    session_id: str | None = None
    t_start: float = 0.0
    queue_time: float = 0.0
    ttft: float | None = None
    ttft_content: float | None = None
    itl: list[float] = field(default_factory=list)
    e2e: float | None = None
    stream_closed: float | None = None
    prompt_tokens: int | None = None
    max_tokens: int | None = None  # requested; compared with output_tokens in the summary
    output_tokens: int = 0
    # where output_tokens came from: "usage" (the server's completion_tokens), "tokenizer"
    # (--llm-tokenizer over the generated text) or "chunks" (chunks that carried text)
    output_tokens_source: str = "usage"
    token_chunks: int = 0
    content_chunks: int = 0  # chunks with text, reasoning or a tool call (not role, not empty)
    # usage details, when the server reports them
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens
    reasoning_tokens: int | None = None  # usage.completion_tokens_details.reasoning_tokens
    ttfot: float | None = None  # ms to the first text/tool-call chunk (not reasoning)
    # continuous usage stats: tokens carried by each token chunk (not in records)
    chunk_tokens: list[int] | None = None
    finish_reason: str | None = None
    status: int = 0
    error: str | None = None
    # what kind of failure (locust_llm.errors: aborted, caller_timeout, cancelled, http,
    # transport, protocol, midstream, client) and a short stable key to count it by (no payload, no host)
    error_kind: str | None = None
    error_key: str | None = None
    # an error event after token chunks: vLLM counts the request successful with the tokens
    # it got; kept here so it is not invisible (summary: midstream_errors)
    midstream_error: str | None = None
    aborted: bool = False
    # the client hung up on purpose (--llm-cancel-*): not a failure, kept apart from completed
    cancelled: bool = False
    images: int = 0  # image parts sent in the request
    image_bytes: int = 0  # their decoded (PNG) bytes, not the base64 text
    warmup: bool = False
    text: str = ""
    # how token arrival was stamped: "user" (perf_counter after the read) or "kernel"
    timestamps: str = "user"
    # kernel mode only (docs/timestamps in locust_llm/timestamps.py): indices of tokens that
    # shared a read with the next one, i.e. whose separate arrival time is unknown; ITL gaps
    # touching them are left out of the ITL percentiles (and counted)
    shared: list[int] | None = None
    shared_reads: int | None = None
    stamp_fallbacks: int | None = None
    own_stamps: int | None = None
    read_lateness_max: float | None = None
    # ms, one sample per socket read that carried tokens: parse time of its first token − its
    # kernel stamp, i.e. how far behind the network the client was (not in records)
    read_lateness: list[float] | None = None
    send_lateness: float | None = None  # ms from t0 to the request's sendall
    # trace replay: ms from the record's scheduled send to t_start (late sends go at once,
    # so this is how far the load fell behind the trace), its row and pass over the trace
    schedule_lag: float | None = None
    trace_index: int | None = None
    trace_loop: int | None = None

    itl_exact: list[float] | None = None  # kernel mode: the gaps kept for percentiles
    # pooling requests only (embeddings, rerank): inputs or documents sent; None for streams.
    # Their latency is e2e (request sent to answer read), their usage tokens prompt_tokens
    items: int | None = None

    def exact_itl(self) -> list[float]:
        """The ITL samples for percentiles: every gap, minus those touching a shared read."""
        if self.itl_exact is not None:
            return self.itl_exact
        if not self.shared:
            return self.itl
        bad = set(self.shared)
        return [g for i, g in enumerate(self.itl) if i not in bad and i + 1 not in bad]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.aborted

    @property
    def tpot(self) -> float | None:
        """(E2E − TTFT) / (n − 1) for n > 1 output tokens, as vLLM computes it."""
        if self.ttft is None or self.e2e is None or self.output_tokens <= 1:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)

    def to_record(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _RECORD_FIELDS}

    def to_json_line(self) -> bytes:
        return orjson.dumps(self.to_record(), option=orjson.OPT_APPEND_NEWLINE)
