"""Writing one request's answer: its tokens as the engine produces them, then its accounting.

``Output.stream`` yields the SSE bytes (one HTTP chunk per write: tokens that fell due
together go out in one send), ``Output.blocking`` the full JSON body; both end in ``_done``,
which frees the engine slot and records the request in /metrics and the truth log. Stream
faults (``midstream``, ``truncate``, ``reset``) strike after half the tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import wire
from .disconnect import ClientGone, watch
from .engine import Seq
from .faults import STREAM_FAULTS
from .txstamps import TxStamps

perf_counter = time.perf_counter


class Abort(Exception):
    """Raised inside a response body: cut the connection (FIN, or RST when ``reset``)."""

    def __init__(self, reset: bool) -> None:
        super().__init__("reset" if reset else "truncate")
        self.reset = reset


@dataclass(eq=False, kw_only=True)
class Output:
    """Writes one request's tokens as they become due, and accounts for it when it ends.

    Built by keyword: a dozen fields of similar types are easy to swap by position.
    """

    app: Any
    seq: Seq
    chat: bool
    rid: str
    created: int
    model: str
    prompt_tokens: int
    start: int  # offset of the first output word in the emulator's text
    finish: str
    stop_reason: str | None
    last_text: bytes | None  # the last token's text when a stop string cut it
    fault: str | None
    session: str | None = None  # X-Session-Id, for the truth log
    t_send: list[float] | None = field(init=False, default=None)
    t_written: list[float] | None = field(init=False, default=None)  # when each write returned
    # the kernel's transmit stamp of each write (None where it gave none), CLOCK_REALTIME
    t_tx: list[float | None] | None = field(init=False, default=None)
    # None: the client disconnected (vLLM then frees the slot and counts no finished request)
    reason: str | None = field(init=False, default="abort")
    written: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.t_send = [] if self.app.truth is not None else None
        self.t_written = [] if self.app.truth is not None else None

    def _pieces(self, lo: int, hi: int) -> list[bytes]:
        pieces = self.app.text.escaped_at(self.start + lo, hi - lo)
        if self.last_text is not None and hi == self.seq.n_out:
            pieces = list(pieces)
            pieces[-1] = self.last_text
        return pieces

    def _cache(self) -> wire.Cache | None:
        """``prompt_tokens_details`` figures, when the server is asked to send them."""
        if not self.app.cfg.enable_prompt_tokens_details:
            return None
        return wire.Cache(self.seq.cached, self.seq.created)

    def _cut(self) -> int:
        """Tokens written before a stream fault strikes (half of them, at least one)."""
        return max(1, self.seq.n_out // 2) if self.fault in STREAM_FAULTS else self.seq.n_out

    def stream(self, enc: wire.StreamEncoder, write, sock=None):
        app, seq = self.app, self.seq
        watcher = watch(sock)
        metrics = app.metrics
        n = seq.n_out
        cut = self._cut()
        per_tok = len(enc.sep) + 8
        max_batch = max(1, app.cfg.write_bytes // per_tok)
        last_t = 0.0
        tx = TxStamps.enable(sock) if self.t_send is not None and sock is not None else None
        if tx is not None:
            self.t_tx = []
        try:
            write(b"")  # headers now, as uvicorn's StreamingResponse does
            if tx is not None:
                tx.take()  # the headers' stamp (and any left from the last request)
            for lo, hi in app.engine.deliveries(seq, max_batch):
                hi = min(hi, cut)
                if lo >= hi:
                    break
                t = perf_counter()
                finish = self.finish if hi == n else None
                data = enc.tokens(
                    self._pieces(lo, hi), lo, finish, self.stop_reason if finish else None
                )
                if lo == 0:
                    metrics.prefilled(self.prompt_tokens, seq.cached)
                    if self.chat:
                        data = enc.role_chunk() + data
                    metrics.itl.observe_many(0.0, hi - lo - 1)
                else:
                    metrics.itl.observe(t - last_t)
                    metrics.itl.observe_many(0.0, hi - lo - 1)
                last_t = t
                metrics.generation_tokens.inc(hi - lo)
                self.written = hi
                k = hi - lo + (lo == 0 and self.chat)
                if self.t_send is not None:
                    # the truth is when the bytes go to the socket: taken after encoding and
                    # the metrics, the last step before pywsgi writes the chunk
                    self.t_send.extend([perf_counter()] * k)
                yield data
                if self.t_written is not None:
                    # pywsgi resumes the generator once its write returned: the bytes left in
                    # [t_send, t_written]; a wide window (the host paused this process) makes
                    # that token's reference time uncertain, and a benchmark can tell
                    self.t_written.extend([perf_counter()] * k)
                if tx is not None:
                    self.t_tx.extend([tx.take()] * k)
                if hi >= cut:
                    break
            if self.fault == "midstream":
                yield (
                    wire.error_event(500, "Internal server error mid-stream (emulated fault).")
                    + wire.DONE
                )
            elif self.fault in ("truncate", "reset"):
                raise Abort(reset=self.fault == "reset")
            else:
                tail = enc.usage_chunk(n, self._cache()) if enc.include_usage else b""
                self.reason = self.finish
                yield tail + wire.DONE
        except (GeneratorExit, ClientGone):  # pywsgi stopped at a yield, or the watcher saw EOF
            self.reason = None
            raise
        finally:
            try:
                self._done()
            finally:
                if watcher is not None:
                    watcher.kill()

    def blocking(self, start_response):
        app, seq = self.app, self.seq
        try:
            for _lo, _hi in app.engine.deliveries(seq, 1 << 30):
                pass
            if self.fault == "midstream":
                return app._error(start_response, 500, "Internal server error (emulated fault).")
            if self.fault in ("truncate", "reset"):
                return _raise_abort(self.fault == "reset")
            t = perf_counter()
            if self.t_send is not None:
                self.t_send.append(t)
            app.metrics.prefilled(self.prompt_tokens, seq.cached)
            app.metrics.generation_tokens.inc(seq.n_out)
            text = "".join(app.text.words_at(self.start, seq.n_out))
            if self.last_text is not None:
                words = app.text.words_at(self.start, seq.n_out)
                text = "".join(words[:-1]) + orjson.loads(b'"' + self.last_text + b'"')
            build = wire.chat_response if self.chat else wire.completion_response
            body = build(self.rid, self.created, self.model, text, self.finish, self.stop_reason,
                         self.prompt_tokens, seq.n_out, self._cache())  # fmt: skip
            self.reason = self.finish
            self.written = seq.n_out
            return app._json(start_response, "200 OK", body)
        finally:
            self._done()

    def _done(self) -> None:
        app, seq = self.app, self.seq
        app.engine.finish(seq)
        app.in_flight -= 1
        now = perf_counter()
        ttft = (seq.first_token_at - seq.arrival) if seq.first_token_at is not None else None
        queue = (seq.admitted_at or now) - seq.arrival
        app.metrics.finished(self.reason, ttft, now - seq.arrival, queue)
        if app.truth is not None:
            app.truth.record(
                self.rid,
                seq.arrival,
                self.t_send,
                t_written=self.t_written,
                **({"t_tx": self.t_tx} if self.t_tx is not None else {}),
                finish_reason=self.reason or "abort",
                session_id=self.session,
            )
        app._count_request()


def _raise_abort(reset: bool):
    raise Abort(reset)
    yield b""  # pragma: no cover - makes this a generator
