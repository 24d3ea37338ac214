"""One streamed response, line by line, into an :class:`LLMResult` (pure: no sockets, no Locust).

The stream loop hands the bytes of each socket read to :meth:`StreamAccumulator.feed_block`
with the time it read them (or single lines to :meth:`StreamAccumulator.feed`); everything the metrics mean (which chunk is the first token, what an ITL gap is,
when a stream counts as truncated) is decided here, so tests can drive it with bytes and
chosen times. It runs at 100k+ tokens/s: per read it does one ``split``, per event one
``orjson.loads`` and a few appends, and defers the rest to :meth:`finish`.

Kernel stamps: ``stamps`` is the socket carrying the response (anything with ``ts_last``,
``ts_seq``, ``ts_kind`` and ``ts_sent``); the stamp of the read that completed a token's
first ``data`` line is recorded with the token, and once the stream has ended the token
times are replaced by those stamps (:mod:`locust_llm.timestamps.analysis`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from locust_llm.errors import MIDSTREAM, PROTOCOL, fail
from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.tokens import chunk_tokens, count_output
from locust_llm.protocol import DONE, Chunk, parse_chunk
from locust_llm.sse import SSEError, SSEParser
from locust_llm.timestamps.analysis import analyze_tokens

__all__ = ["NO_TOKENS", "TRUNCATED", "StreamAccumulator"]

TRUNCATED = (
    "stream truncated: closed before any finish_reason and without [DONE] "
    "(replica crashed or connection dropped)"
)
NO_TOKENS = "stream ended without any token chunk"

#: ``on_token(result, index, t_ms, text)``: a listener that sees each token chunk as it arrives
TokenCallback = Callable[[LLMResult, int, float, str], None]


class StreamAccumulator:
    """Builds one request's result from its SSE bytes and their arrival times.

    ``t0`` is the request's start (perf_counter seconds): every latency is measured from it.
    Per token it keeps only the token's time (and its read's stamp); gaps, TTFT and the rest
    are derived once, in :meth:`finish` (or :meth:`cut_off`).
    """

    __slots__ = (
        "_data_stamp",
        "_end_seq",
        "_feed_line",
        "_frag",
        "_ks",
        "_marks",
        "_max",
        "_sse",
        "answer_at",
        "content_at",
        "chunks",
        "content_chunks",
        "cum_tokens",
        "done",
        "on_token",
        "pieces",
        "reasoning",
        "res",
        "stamps",
        "t0",
        "times",
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
        self._sse = SSEParser()
        self._feed_line = self._sse.feed_line
        self._max = self._sse.max_event_bytes
        self._frag = b""  # feed_block: an unterminated line, completed by a later read
        # per token, the stamp, seq and kind of the read that completed its first data line
        # (three lists, extended once per read: what the analysis takes, with no unzipping)
        self._marks: tuple[list[float], list[int], list[int]] | None = (
            ([], [], []) if stamps is not None else None
        )
        self._data_stamp: float | None = None
        self._ks: tuple[float, int, int] = (0.0, 0, 0)
        # the read that carried the stream's end (usage chunk, [DONE]): a last token read
        # with it is stamped with the later bytes' arrival, so it has no stamp of its own
        self._end_seq: int | None = None
        self.times: list[float] = []  # per token chunk: when it was read (perf_counter s)
        self.pieces: list[str] = []
        self.reasoning: list[str] = []
        self.chunks = 0
        self.content_chunks = 0
        self.content_at = -1
        self.answer_at = -1
        self.cum_tokens: list[int] = []  # continuous usage: completion_tokens after each chunk
        self.done = False
        self.usage: dict[str, Any] | None = None

    @property
    def first(self) -> float | None:
        """When the first token chunk was read (perf_counter s), None before it."""
        return self.times[0] if self.times else None

    @property
    def last(self) -> float | None:
        """When the latest token chunk was read (perf_counter s), None before the first."""
        return self.times[-1] if self.times else None

    def _mark(self) -> tuple[float, int, int]:
        s = self.stamps
        return (s.ts_last, s.ts_seq, s.ts_kind)

    def feed_block(self, data: bytes, now: float) -> None:
        """All body bytes one socket read delivered (any split), read at ``now``.

        Why: framing whole reads costs one ``split`` per read instead of a ``readline`` and
        a parser call per line, and takes one clock reading per read, not per line. Events
        of the shape OpenAI servers send (``data: {...}\n\n`` between idle states) are
        decoded at once; anything else (comments, several data lines, CR line ends, an
        event split across reads) goes through the line parser with the same times as if
        each line had been read on its own. Raises ``SSEError``/``ProtocolError``.
        """
        if self._frag:
            data = self._frag + data
            self._frag = b""
        if self._data_stamp is not None or not self._sse.idle or b"\r" in data:
            self._lines(data, now)
            return
        mark = self._mark() if self.stamps is not None else None
        if (
            data[:6] == b"data: "
            and data.find(b"\n") == len(data) - 2
            and data[-2:] == b"\n\n"
            and len(data) <= self._max + 8
        ):  # a paced stream's read: exactly one plain event
            self._events((data[6:-2],), now, mark)
            return
        if data[:6] == b"data: " and b"\n\ndata: " in data:  # two events or more
            # the common read: plain events back to back. Split on the boundary between two
            # of them; if no piece holds a line end, every piece but the last is one event's
            # payload, found without a Python step per event
            pieces = data[6:].split(b"\n\ndata: ")
            last = pieces.pop()
            if (
                pieces
                and data.count(b"\n") == 2 * len(pieces) + last.count(b"\n")
                and max(map(len, pieces)) <= self._max
            ):
                self._events(pieces, now, mark)
                data = b"data: " + last
        parts = data.split(b"\n\n")
        rest = parts.pop()
        if parts:
            run: list[bytes] = []  # payloads of the plain events so far, decoded in one call
            limit = self._max + 6
            for p in parts:
                if p[:6] == b"data: " and b"\n" not in p and len(p) <= limit:
                    run.append(p[6:])
                    continue
                if run:
                    self._events(run, now, mark)
                    run = []
                self._lines(p + b"\n\n", now)  # and the line parser judges an oversized one
            if run:
                self._events(run, now, mark)
        if rest:
            self._lines(rest, now)

    def _lines(self, data: bytes, now: float) -> None:
        """Feed the complete lines of ``data`` one by one; keep an unterminated tail."""
        start = 0
        feed = self.feed
        find = data.find
        while True:
            end = find(b"\n", start)
            if end < 0:
                break
            feed(data[start : end + 1], now)
            start = end + 1
        if start < len(data):
            tail = data[start:]
            if len(tail) > self._max:
                raise SSEError(f"SSE line longer than {self._max} bytes without a line end")
            self._frag = tail

    def feed(self, line: bytes, now: float) -> None:
        """One line as ``readline`` returns it, read at ``now`` (perf_counter seconds).

        An event's time is that of its first ``data`` line: a long event split over several
        reads still arrived when its first bytes did. Raises ``SSEError``/``ProtocolError``.
        """
        ev = self._feed_line(line)
        if ev is None:
            if self._data_stamp is None and line[:4] == b"data":
                self._data_stamp = now
                if self.stamps is not None:  # the read that completed this token's first line
                    self._ks = self._mark()
            return
        stamp = self._data_stamp
        if stamp is None:
            stamp = now
            if self.stamps is not None:
                self._ks = self._mark()
        self._data_stamp = None
        self._event(ev.data, stamp, self._ks)

    def _event(self, payload: bytes, stamp: float, mark: tuple[float, int, int] | None) -> None:
        """One event's payload, its first data line read at ``stamp``."""
        self._events((payload,), stamp, mark)

    def _events(
        self, payloads: Sequence[bytes], stamp: float, mark: tuple[float, int, int] | None
    ) -> None:
        """Events whose first data lines came in one read at ``stamp``, in order.

        One call per read, with what every token touches held in locals: at ingest a read
        carries dozens of tokens, and attribute lookups per token were a visible share.
        """
        res = self.res
        add_piece = self.pieces.append
        on_token = self.on_token
        first = self.chunks
        chunks = first
        content = self.content_chunks
        firsts = self.content_at < 0 or self.answer_at < 0
        try:
            for payload in payloads:
                c = parse_chunk(payload)
                if c[0]:  # is_token
                    if c[1]:  # has_content
                        content += 1
                        if firsts:
                            firsts = self._firsts(c, chunks)
                        if c[8]:
                            self.reasoning.append(c[8])
                    chunks += 1
                    if c[2]:
                        add_piece(c[2])
                    if c[3] is not None:
                        res.finish_reason = c[3]
                    if c[4] is not None:
                        self.usage = c[4]
                        self.cum_tokens.append(c[4].get("completion_tokens") or 0)
                    if res.id is None:
                        res.id = c[6]
                    if on_token is not None:
                        res.token_chunks = chunks
                        on_token(res, chunks - 1, (stamp - self.t0) * 1000, c[2])
                elif c is DONE:
                    self.done = True
                    if mark is not None:
                        self._end_seq = mark[1]
                elif c.error is not None:
                    if res.midstream_error is None:
                        res.midstream_error = f"error event mid-stream: {c.error}"
                elif c.usage is not None:
                    self.usage = c.usage
                    if mark is not None:
                        self._end_seq = mark[1]
        finally:  # a malformed event ends the stream: what came before it still counts
            n = chunks - first
            marks = self._marks
            if n == 1:  # paced streams: one token per read
                self.times.append(stamp)
                if marks is not None and mark is not None:
                    marks[0].append(mark[0])
                    marks[1].append(mark[1])
                    marks[2].append(mark[2])
            elif n:
                self.times += [stamp] * n
                if marks is not None and mark is not None:
                    marks[0].extend([mark[0]] * n)
                    marks[1].extend([mark[1]] * n)
                    marks[2].extend([mark[2]] * n)
            self.chunks = chunks
            self.content_chunks = content

    def _firsts(self, c: Chunk, i: int) -> bool:
        """Token chunk ``i`` carries content: note the first content and answer chunks;
        False once both are known."""
        if self.content_at < 0:
            self.content_at = i
        if c.answer and self.answer_at < 0:
            self.answer_at = i
        return self.answer_at < 0

    def _received(self, gaps: bool = True) -> None:
        """Counts, first-token time and (with ``gaps``) ITL gaps of what arrived so far
        (user-space times)."""
        res = self.res
        res.token_chunks = self.chunks
        res.content_chunks = self.content_chunks
        res.text = "".join(self.pieces)
        times, t0 = self.times, self.t0
        if times:
            res.ttft = (times[0] - t0) * 1000
            if gaps:
                res.itl = [(b - a) * 1000 for a, b in zip(times, times[1:])]
            if self.content_at >= 0:
                res.ttft_content = (times[self.content_at] - t0) * 1000
            if self.answer_at >= 0:
                res.ttfot = (times[self.answer_at] - t0) * 1000

    def finish(
        self, now: float, prompt_tokens: int | None = None, tokenizer: Any | None = None
    ) -> None:
        """The stream ended (closed, or the body completed) at ``now``: set every figure and
        judge a stream that ended without its end as a failure."""
        res = self.res
        res.stream_closed = (now - self.t0) * 1000
        # with kernel stamps the gaps come from the stamps: no user-space ones to build first
        self._received(gaps=self._marks is None)
        if self.times:
            res.e2e = (self.times[-1] - self.t0) * 1000
        if self._marks is not None:
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
        res, t0, marks = self.res, self.t0, self._marks
        assert marks is not None
        a = analyze_tokens(self.times, *marks, end_seq=self._end_seq)
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
        res.itl = [(b - a) * 1000 for a, b in zip(times, times[1:])]
        res.itl_exact = [g * 1000 for g in a.itl]
        res.shared = [i for i, f in enumerate(a.shared_flags) if f]
        res.shared_reads = a.shared
        res.stamp_fallbacks = a.fallbacks
        res.own_stamps = a.own
        lat = [x * 1000 for x in a.read_lateness]
        res.read_lateness = lat
        res.read_lateness_max = max(lat) if lat else None
