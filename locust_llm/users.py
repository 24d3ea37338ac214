"""Locust users that stream OpenAI-compatible requests and time every token chunk.

The stream loop is the hot path of the whole tool: at 100k+ tokens/s in one process every
microsecond per chunk is a percent of the client's CPU, and any CPU the client burns shows up
as latency it attributes to the server. So the loop reads lines straight from
geventhttpclient's response (``readline``, not ``iter_content``, which waits for 1 KiB), takes
one ``perf_counter()`` per line, decodes each event with one ``orjson.loads`` and defers
everything else (histograms, stats rows, records) to the end of the request.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import gevent
import orjson
from geventhttpclient.response import HTTPParseError
from locust import FastHttpUser
from locust.exception import CatchResponseError

from locust_llm import plugin
from locust_llm.backoff import Backoff, is_immediate, kind_of
from locust_llm.errors import describe_connect_error
from locust_llm.metrics.locust_grid import on_locust_grid
from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.tokens import chunk_tokens, count_output
from locust_llm.protocol import (
    CHAT_PATH,
    COMPLETIONS_PATH,
    DONE,
    ProtocolError,
    chat_body,
    completions_body,
    error_message,
    parse_chunk,
)
from locust_llm.sse import SSEError, SSEParser
from locust_llm.timestamps import FALLBACK, StampReader, analyze_tokens

__all__ = ["LLMUser", "OpenAIChatUser", "OpenAICompletionsUser", "LLMResult"]

_perf = time.perf_counter

# TTFT and ITL only exist for streamed responses; a locustfile that turns streaming off gets
# this, not a request whose JSON answer would be blamed on the server
NOT_STREAMED = (
    "stream={!r} in the request body: locust-llm measures streamed responses only "
    "(TTFT/ITL need them); leave stream out of chat()/complete() (or send stream=True)"
)


class LLMUser(FastHttpUser):
    """Base class: connection settings and the stream loop shared by chat and completions.

    ``network_timeout`` is the longest silence tolerated while reading (queueing + prefill +
    one token); a request that sees no byte for that long fails with a read-timeout message.
    """

    abstract = True
    network_timeout = 600.0
    connection_timeout = 10.0
    concurrency = 1  # one streamed request at a time per user; keep-alive reuses it

    def __init__(self, environment: Any) -> None:
        llm = plugin.runtime(environment)
        # FastHttpUser hands network_timeout to the connection pool in its __init__: set the
        # per-instance value from --llm-timeout first (the class default is only a fallback)
        if llm.timeout is not None:
            self.network_timeout = llm.timeout
        super().__init__(environment)
        self.llm = llm
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "Accept-Encoding": "identity",
        }
        self._kernel_ts = self.llm.install_client(self.client, self.host)
        self._backoff = Backoff()

    # -- public API -------------------------------------------------------------------------
    @property
    def model(self) -> str:
        """The model to ask for: ``--llm-model``, else the server's first ``/v1/models`` id."""
        return self.llm.resolve_model(self.host)

    def stream_request(
        self,
        path: str,
        body: dict[str, Any],
        *,
        name: str | None = None,
        prompt_tokens: int | None = None,
        queue_time: float = 0.0,
    ) -> LLMResult:
        """POST ``body`` to ``path`` with streaming and measure it. Never raises on failure:
        the failure is in Locust's stats and in ``result.error`` (``GreenletExit`` is re-raised
        after the request is recorded as aborted, so stopping users stays immediate)."""
        llm = self.llm
        name = name or path  # Locust shows it as type POST, name /v1/...
        if body.get("stream") is not True:
            return self._refuse(name, path, NOT_STREAMED.format(body.get("stream")))
        res = LLMResult(name=name, model=str(body.get("model", "")), queue_time=queue_time)
        res.max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        res.request_id = uuid.uuid4().hex
        headers = {**self._headers, "X-Request-Id": res.request_id}
        auth = llm.auth_header
        if auth:
            headers["Authorization"] = auth
        data = orjson.dumps(body)
        res.t_start = time.time()
        res.warmup = llm.in_warmup(res.t_start)
        llm.collector.request_started(res.t_start)
        t0 = _perf()
        try:
            with self.client.request(
                "POST",
                path,
                name=name,
                data=data,
                headers=headers,
                stream=True,
                catch_response=True,
            ) as r:
                try:
                    res.status = r.status_code or 0
                    err = getattr(r, "error", None)
                    if err is not None and not res.status:
                        res.error = describe_connect_error(err, self.host)
                    elif res.status != 200:
                        res.error = error_message(res.status, _body(r))
                    elif not _is_event_stream(r):
                        res.error = _not_a_stream(r)
                    else:
                        self._read_stream(r, res, t0, prompt_tokens)
                except (gevent.GreenletExit, gevent.Timeout, KeyboardInterrupt) as e:
                    # users stopped, a timeout the caller put around chat(), or Ctrl-C landing
                    # in this greenlet: cancelled by the client, so aborted (not a server error
                    # and never a success with the tokens so far), and the exception goes on
                    res.aborted = True
                    res.error = _aborted_text(e)
                    raise
                except (ProtocolError, SSEError) as e:
                    res.error = f"malformed stream: {e}"
                except TimeoutError:  # the socket's read timeout (socket.timeout)
                    res.error = (
                        f"read timeout: no data for {self.network_timeout:g}s "
                        "(server stuck or queue too long? raise --llm-timeout)"
                    )
                except (ConnectionError, OSError) as e:
                    res.error = f"connection lost mid-stream: {type(e).__name__}: {e}"
                except Exception as e:  # anything else must still be a counted failure
                    res.error = f"{type(e).__name__}: {e}"
                finally:
                    if res.stream_closed is None:
                        res.stream_closed = (_perf() - t0) * 1000
                    meta = r.request_meta
                    took = res.e2e if res.e2e is not None else res.stream_closed
                    # on Locust's grid: every column of Locust's row on the same rounding
                    meta["response_time"] = on_locust_grid(took) if took is not None else took
                    meta["response_length"] = res.output_tokens
                    if res.aborted:
                        # cut off by the client (users stopped, a caller's timeout): neither a
                        # success nor a server failure, so Locust's table, CSV and HTML leave it
                        # out, as the LLM summary's "failed" does (it counts it as aborted)
                        pass
                    elif res.error is not None:
                        r.failure(res.error)
                    else:
                        r.success()
        except (gevent.GreenletExit, gevent.Timeout, KeyboardInterrupt) as e:
            if res.error is None:  # stopped while connecting/sending: not a completed request
                res.aborted = True
                res.error = _aborted_text(e)
            raise
        except Exception as e:
            # raised before a response existed (e.g. the HTTP client refused a header): it must
            # be a counted failure, never a success with no tokens or a bare task traceback
            if res.error is None:
                res.error = plugin.redact(f"request not sent: {type(e).__name__}: {e}", llm.api_key)
                self._report_failure(res, path, (_perf() - t0) * 1000)
        finally:
            if res.error is not None:
                res.error = plugin.redact(res.error, llm.api_key)
            llm.finish(res)
        self._back_off(res)
        return res

    def _back_off(self, res: LLMResult) -> None:
        failed = res.error is not None and is_immediate(
            res.status, res.ttft is not None, res.aborted
        )
        delay = self._backoff.next_delay(failed)
        if delay <= 0:
            return
        kind = kind_of(res.status, res.error or "")
        logged = self.llm.backoff_logged
        if kind not in logged:
            logged.add(kind)
            plugin.log.warning(
                "locust-llm: requests fail at once (%s); each user now waits up to %gs "
                "between such attempts (logged once per kind)",
                res.error,
                self._backoff.cap,
            )
        gevent.sleep(delay)

    def _report_failure(self, res: LLMResult, path: str, response_time_ms: float) -> None:
        """A failure Locust's own request machinery never saw: put it in its stats."""
        self.environment.events.request.fire(
            request_type="POST",
            name=res.name,
            response_time=response_time_ms,
            response_length=0,
            response=None,
            context={},
            exception=CatchResponseError(res.error),
            start_time=res.t_start,
            url=(self.host or "") + path,
        )

    def _send(
        self,
        make_body: Any,
        payload: Any,
        max_tokens: int | None,
        name: str | None,
        prompt_tokens: int | None,
        queue_time: float,
        extra: dict[str, Any],
    ) -> LLMResult:
        """Shared by :meth:`chat` and :meth:`complete`: defaults from the options, then send."""
        llm = self.llm
        model = extra.pop("model", None) or self._resolve_model(name or self.path)
        if isinstance(model, LLMResult):
            return model
        body = make_body(
            model,
            payload,
            max_tokens if max_tokens is not None else llm.max_tokens,
            ignore_eos=extra.pop("ignore_eos", llm.ignore_eos),
            continuous_usage=extra.pop("continuous_usage", llm.continuous_usage),
            **extra,
        )
        return self.stream_request(
            self.path, body, name=name, prompt_tokens=prompt_tokens, queue_time=queue_time
        )

    def _refuse(self, name: str, path: str, error: str) -> LLMResult:
        """A request the locustfile asked for that cannot be measured: a counted failure with
        the reason (never sent), paced by the back-off like any failure that repeats at once."""
        res = LLMResult(name=name, model="")
        res.t_start = time.time()
        res.error = error
        self._report_failure(res, path, 0.0)
        self.llm.collector.request_started(res.t_start)
        self.llm.finish(res)
        self._back_off(res)
        return res

    def _resolve_model(self, name: str) -> str | LLMResult:
        """The model name, or a counted failed request when ``/v1/models`` cannot be read
        (server down, not OpenAI-compatible): a task must never die with a bare traceback."""
        try:
            return self.model
        except RuntimeError as e:
            res = LLMResult(name=name, model="")
            res.t_start = time.time()
            res.error = f"{e} (or pass --llm-model to skip the lookup)"
            self._report_failure(res, self.path, 0.0)
            self.llm.collector.request_started(res.t_start)
            self.llm.finish(res)
            # the lookup is retried on the next request: pace it, or a closed loop would
            # record thousands of identical failures per second
            gevent.sleep(1.0)
            return res

    # -- the hot loop -------------------------------------------------------------------------
    def _read_stream(self, r: Any, res: LLMResult, t0: float, prompt_tokens: int | None) -> None:
        stream = r.stream
        readline = stream.readline
        feed_line = SSEParser().feed_line
        perf = _perf
        # kernel receive stamps (--llm-timestamps): the socket carrying this response, taken
        # before the body is read (geventhttpclient drops it at message end)
        reader = StampReader.from_response(r) if self._kernel_ts else None
        sock = reader.sock if reader is not None else None
        k_stamp: list[float] = []
        k_seq: list[int] = []
        k_kind: list[int] = []
        k_user: list[float] = []
        ks = kq = kk = 0
        itl = res.itl
        append_gap = itl.append
        pieces: list[str] = []
        add_piece = pieces.append
        first = last = None
        data_stamp = None
        chunks = 0
        content_chunks = 0
        content_at = -1
        cum_tokens: list[int] = []  # continuous usage: completion_tokens after each chunk
        reasoning: list[str] = []
        done = False
        usage = None
        env = self.environment
        # --llm-token-events: listeners see each chunk as it arrives (user-space time; the
        # kernel stamps, if any, replace the result's times once the stream has ended)
        token_fire = env.events.llm_token.fire if self.llm.token_events else None
        while True:
            try:
                line = readline(b"\n")
            except HTTPParseError:  # connection closed inside the chunked body: judged below
                break
            now = perf()
            if not line:
                break
            ev = feed_line(line)
            if ev is None:
                if data_stamp is None and line[:4] == b"data":
                    data_stamp = now
                    if sock is not None:  # the read that completed this token's line
                        ks, kq, kk = sock.ts_last, sock.ts_seq, sock.ts_kind
                continue
            if data_stamp is not None:
                stamp = data_stamp
            else:
                stamp = now
                if sock is not None:
                    ks, kq, kk = sock.ts_last, sock.ts_seq, sock.ts_kind
            data_stamp = None
            c = parse_chunk(ev.data)
            if c.is_token:
                if last is None:
                    first = stamp
                else:
                    append_gap((stamp - last) * 1000)
                last = stamp
                if sock is not None:
                    k_user.append(stamp)
                    k_stamp.append(ks)
                    k_seq.append(kq)
                    k_kind.append(kk)
                if c.has_content:
                    content_chunks += 1
                    if content_at < 0:
                        content_at = chunks
                        res.ttft_content = (stamp - t0) * 1000
                    if c.answer and res.ttfot is None:
                        res.ttfot = (stamp - t0) * 1000
                    if c.reasoning:
                        reasoning.append(c.reasoning)
                chunks += 1
                if c.text:
                    add_piece(c.text)
                if c.finish_reason is not None:
                    res.finish_reason = c.finish_reason
                if c.usage is not None:
                    usage = c.usage
                    cum_tokens.append(usage.get("completion_tokens") or 0)
                if res.id is None:
                    res.id = c.id
                if token_fire is not None:
                    res.token_chunks = chunks
                    token_fire(
                        result=res,
                        index=chunks - 1,
                        t_ms=(stamp - t0) * 1000,
                        text=c.text,
                        environment=env,
                    )
            elif c is DONE:
                done = True
            elif c.error is not None:
                if res.midstream_error is None:
                    res.midstream_error = f"error event mid-stream: {c.error}"
            elif c.usage is not None:
                usage = c.usage
        res.stream_closed = (perf() - t0) * 1000
        res.token_chunks = chunks
        res.content_chunks = content_chunks
        res.text = "".join(pieces)
        if first is not None:
            res.ttft = (first - t0) * 1000
            res.e2e = (last - t0) * 1000  # type: ignore[operator]
        if sock is not None:
            self._apply_kernel_stamps(res, t0, sock, k_user, k_stamp, k_seq, k_kind, content_at)
        count_output(res, usage, prompt_tokens, self.llm.output_tokenizer, reasoning)
        if len(cum_tokens) == chunks and chunks:
            res.chunk_tokens = chunk_tokens(cum_tokens)
        if res.error is None and res.midstream_error is not None and chunks == 0:
            res.error = res.midstream_error  # vLLM: no token chunk, so a failure
        if res.error is None:
            if not done and res.finish_reason is None:
                res.error = (
                    "stream truncated: closed before any finish_reason and without [DONE] "
                    "(replica crashed or connection dropped)"
                )
            elif chunks == 0:
                res.error = "stream ended without any token chunk"

    @staticmethod
    def _apply_kernel_stamps(
        res: LLMResult,
        t0: float,
        sock: Any,
        user: list[float],
        stamp: list[float],
        seq: list[int],
        kind: list[int],
        content_at: int,
    ) -> None:
        """Replace user-space token times with kernel receive stamps (once per request)."""
        a = analyze_tokens(user, stamp, seq, kind)
        times = a.times
        res.timestamps = "kernel"
        if sock.ts_sent and sock.ts_sent >= t0:
            res.send_lateness = (sock.ts_sent - t0) * 1000
        if not times:
            return
        res.ttft = (times[0] - t0) * 1000
        res.e2e = (times[-1] - t0) * 1000
        if content_at >= 0:
            res.ttft_content = (times[content_at] - t0) * 1000
        res.itl = [(times[i + 1] - times[i]) * 1000 for i in range(len(times) - 1)]
        res.itl_exact = [g * 1000 for g in a.itl]
        res.shared = [i for i, f in enumerate(a.shared_flags) if f]
        res.shared_reads = a.shared
        res.stamp_fallbacks = a.fallbacks
        res.own_stamps = a.own
        # one lateness sample per read (its first token): per token would weigh a read that
        # carried 50 tokens 50 times and cost a histogram insert per token
        lat = []
        prev = -1
        for i, q in enumerate(seq):
            if q != prev and kind[i] != FALLBACK:
                lat.append((user[i] - stamp[i]) * 1000)
            prev = q
        res.read_lateness = lat
        res.read_lateness_max = max(lat) if lat else None


def _aborted_text(e: BaseException) -> str:
    if isinstance(e, gevent.Timeout):
        return f"{plugin.ABORTED}cancelled by a timeout around the request ({e})"
    return f"{plugin.ABORTED}user stopped while the request was in flight"


def _body(r: Any) -> bytes:
    try:
        content = r.content
    except Exception:
        return b""
    return content if isinstance(content, bytes) else (content or "").encode()


def _is_event_stream(r: Any) -> bool:
    ctype = (r.headers.get("content-type") or "") if r.headers else ""
    return not ctype or ctype.startswith("text/event-stream")


def _not_a_stream(r: Any) -> str:
    ctype = r.headers.get("content-type") or ""
    body = _body(r)
    if ctype.startswith("application/json"):
        return (
            "HTTP 200 with a JSON body instead of an event stream: the server ignored "
            f"stream=true ({body[:80].decode('utf-8', 'replace')!r})"
        )
    return (
        f"HTTP 200 with Content-Type {ctype!r}, not text/event-stream: "
        "is this an OpenAI-compatible endpoint?"
    )


class OpenAIChatUser(LLMUser):
    """Streams ``/v1/chat/completions``. Subclass it and call :meth:`chat` from tasks."""

    abstract = True
    path = CHAT_PATH

    def chat(
        self,
        messages: list[dict[str, Any]] | str,
        max_tokens: int | None = None,
        *,
        name: str | None = None,
        prompt_tokens: int | None = None,
        queue_time: float = 0.0,
        **extra: Any,
    ) -> LLMResult:
        """One streamed chat request; ``extra`` goes into the body (temperature, model...)."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        return self._send(chat_body, messages, max_tokens, name, prompt_tokens, queue_time, extra)


class OpenAICompletionsUser(LLMUser):
    """Streams ``/v1/completions``. Subclass it and call :meth:`complete` from tasks."""

    abstract = True
    path = COMPLETIONS_PATH

    def complete(
        self,
        prompt: str | list[int],
        max_tokens: int | None = None,
        *,
        name: str | None = None,
        prompt_tokens: int | None = None,
        queue_time: float = 0.0,
        **extra: Any,
    ) -> LLMResult:
        """One streamed completion request; ``extra`` goes into the body."""
        return self._send(
            completions_body, prompt, max_tokens, name, prompt_tokens, queue_time, extra
        )
