"""One streamed response, line by line, into an :class:`LLMResult` (pure: no sockets, no Locust).

The stream loop reads lines and hands each to :meth:`StreamAccumulator.feed` with the time it
read it; everything the metrics mean (which chunk is the first token, what an ITL gap is,
when a stream counts as truncated) is decided here, so tests can drive it with bytes and
chosen times. It runs once per line at 100k+ tokens/s: per line it does one SSE parse, per
event one ``orjson.loads``, and defers the rest to :meth:`finish`.

Kernel stamps: ``stamps`` is the socket carrying the response (anything with ``ts_last``,
``ts_seq``, ``ts_kind`` and ``ts_sent``); the stamp of the read that completed a token's
first ``data`` line is recorded with the token, and once the stream has ended the token
times are replaced by those stamps (:mod:`locust_llm.timestamps.analysis`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from locust_llm.errors import MIDSTREAM, PROTOCOL, fail
from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.tokens import chunk_tokens, count_output
from locust_llm.protocol import DONE, parse_chunk
from locust_llm.sse import SSEParser
from locust_llm.timestamps.analysis import StampLog

__all__ = ["NO_TOKENS", "TRUNCATED", "StreamAccumulator"]

TRUNCATED = (
    "stream truncated: closed before any finish_reason and without [DONE] "
    "(replica crashed or connection dropped)"
)
NO_TOKENS = "stream ended without any token chunk"

#: ``on_token(result, index, t_ms, text)``: a listener that sees each token chunk as it arrives
TokenCallback = Callable[[LLMResult, int, float, str], None]


class StreamAccumulator:
    """Builds one request's result from its SSE lines and their arrival times.

    ``t0`` is the request's start (perf_counter seconds): every latency is measured from it.
    """

    __slots__ = (
        "_data_stamp",
        "_feed_line",
        "_ks",
        "_log",
        "content_at",
        "chunks",
        "content_chunks",
        "cum_tokens",
        "done",
        "first",
        "last",
        "on_token",
        "pieces",
        "reasoning",
        "res",
        "stamps",
        "t0",
        "usage",
    )

    def __init__(
        self,
        res: LLMResult,
        t0: float,
        stamps: Any | None = None,
        on_token: TokenCallback | None = None,
    ) -> None:
        self.res = res
        self.t0 = t0
        self.stamps = stamps
        self.on_token = on_token
        self._feed_line = SSEParser().feed_line
        self._log = StampLog() if stamps is not None else None
        self._data_stamp: float | None = None
        self._ks: tuple[float, int, int] = (0.0, 0, 0)
        self.first: float | None = None
        self.last: float | None = None
        self.pieces: list[str] = []
        self.reasoning: list[str] = []
        self.chunks = 0
        self.content_chunks = 0
        self.content_at = -1
        self.cum_tokens: list[int] = []  # continuous usage: completion_tokens after each chunk
        self.done = False
        self.usage: dict[str, Any] | None = None

    def feed(self, line: bytes, now: float) -> None:
        """One line as ``readline`` returned it, read at ``now`` (perf_counter seconds).

        An event's time is that of its first ``data`` line: a long event split over several
        reads still arrived when its first bytes did. Raises ``SSEError``/``ProtocolError``.
        """
        ev = self._feed_line(line)
        if ev is None:
            if self._data_stamp is None and line[:4] == b"data":
                self._data_stamp = now
                s = self.stamps
                if s is not None:  # the read that completed this token's first line
                    self._ks = (s.ts_last, s.ts_seq, s.ts_kind)
            return
        stamp = self._data_stamp
        if stamp is None:
            stamp = now
            s = self.stamps
            if s is not None:
                self._ks = (s.ts_last, s.ts_seq, s.ts_kind)
        self._data_stamp = None
        c = parse_chunk(ev.data)
        res = self.res
        if c.is_token:
            last = self.last
            if last is None:
                self.first = stamp
            else:
                res.itl.append((stamp - last) * 1000)
            self.last = stamp
            log = self._log
            if log is not None:
                ks, kq, kk = self._ks
                log.add(stamp, ks, kq, kk)
            if c.has_content:
                self.content_chunks += 1
                if self.content_at < 0:
                    self.content_at = self.chunks
                    res.ttft_content = (stamp - self.t0) * 1000
                if c.answer and res.ttfot is None:
                    res.ttfot = (stamp - self.t0) * 1000
                if c.reasoning:
                    self.reasoning.append(c.reasoning)
            self.chunks += 1
            if c.text:
                self.pieces.append(c.text)
            if c.finish_reason is not None:
                res.finish_reason = c.finish_reason
            if c.usage is not None:
                self.usage = c.usage
                self.cum_tokens.append(c.usage.get("completion_tokens") or 0)
            if res.id is None:
                res.id = c.id
            if self.on_token is not None:
                res.token_chunks = self.chunks
                self.on_token(res, self.chunks - 1, (stamp - self.t0) * 1000, c.text)
        elif c is DONE:
            self.done = True
        elif c.error is not None:
            if res.midstream_error is None:
                res.midstream_error = f"error event mid-stream: {c.error}"
        elif c.usage is not None:
            self.usage = c.usage

    def _received(self) -> None:
        """Counts and first-token time of what arrived so far (user-space times)."""
        res = self.res
        res.token_chunks = self.chunks
        res.content_chunks = self.content_chunks
        res.text = "".join(self.pieces)
        if self.first is not None:
            res.ttft = (self.first - self.t0) * 1000

    def finish(
        self, now: float, prompt_tokens: int | None = None, tokenizer: Any | None = None
    ) -> None:
        """The stream ended (closed, or the body completed) at ``now``: set every figure and
        judge a stream that ended without its end as a failure."""
        res = self.res
        res.stream_closed = (now - self.t0) * 1000
        self._received()
        if self.last is not None:
            res.e2e = (self.last - self.t0) * 1000
        if self._log is not None:
            self._apply_kernel_stamps()
        count_output(res, self.usage, prompt_tokens, tokenizer, self.reasoning)
        chunks = self.chunks
        if len(self.cum_tokens) == chunks and chunks:
            res.chunk_tokens = chunk_tokens(self.cum_tokens)
        if res.error is None and res.midstream_error is not None and chunks == 0:
            # vLLM: no token chunk, so a failure
            fail(res, MIDSTREAM, "error event before any token", res.midstream_error)
        if res.error is None:
            if not self.done and res.finish_reason is None:
                fail(res, PROTOCOL, "stream truncated", TRUNCATED)
            elif chunks == 0:
                fail(res, PROTOCOL, "no token chunk", NO_TOKENS)

    def hung_up(
        self, now: float, prompt_tokens: int | None = None, tokenizer: Any | None = None
    ) -> None:
        """The client closed the stream on purpose at ``now``: the tokens that arrived are
        counted as at a normal end, but no E2E (the request never ended) and no judgement
        (a stream the client cut is not truncated by the server)."""
        self.res.stream_closed = (now - self.t0) * 1000
        self._received()
        count_output(self.res, self.usage, prompt_tokens, tokenizer, self.reasoning)

    def cut_off(self) -> None:
        """The stream stopped before its end (the client aborted it, or it broke): keep what
        arrived, consistently (TTFT, chunk counts, text and gaps all describe the same tokens);
        no E2E, the request never ended."""
        self._received()

    def _apply_kernel_stamps(self) -> None:
        """Replace user-space token times with kernel receive stamps (once per request)."""
        res, t0, log = self.res, self.t0, self._log
        assert log is not None
        a = log.analyze()
        times = a.times
        res.timestamps = "kernel"
        sent = getattr(self.stamps, "ts_sent", 0.0)
        if sent and sent >= t0:
            res.send_lateness = (sent - t0) * 1000
        if not times:
            return
        res.ttft = (times[0] - t0) * 1000
        res.e2e = (times[-1] - t0) * 1000
        if self.content_at >= 0:
            res.ttft_content = (times[self.content_at] - t0) * 1000
        res.itl = [(times[i + 1] - times[i]) * 1000 for i in range(len(times) - 1)]
        res.itl_exact = [g * 1000 for g in a.itl]
        res.shared = [i for i, f in enumerate(a.shared_flags) if f]
        res.shared_reads = a.shared
        res.stamp_fallbacks = a.fallbacks
        res.own_stamps = a.own
        lat = [x * 1000 for x in a.read_lateness]
        res.read_lateness = lat
        res.read_lateness_max = max(lat) if lat else None
