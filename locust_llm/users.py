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
from locust_llm.body import read_body
from locust_llm.errors import (
    ABORTED,
    CALLER_TIMEOUT,
    CANCELLED,
    CLIENT,
    HTTP,
    PROTOCOL,
    TRANSPORT,
    connect_error_key,
    describe_connect_error,
    fail,
)
from locust_llm.hangup import read_until_cancel
from locust_llm.metrics.locust_grid import on_locust_grid
from locust_llm.metrics.record import LLMResult
from locust_llm.protocol import (
    CHAT_PATH,
    COMPLETIONS_PATH,
    ProtocolError,
    chat_body,
    completions_body,
    error_message,
)
from locust_llm.sse import SSEError
from locust_llm.stream import StreamAccumulator
from locust_llm.timestamps import StampReader
from locust_llm.workload.cancel import CancelAfter
from locust_llm.workload.images import attach_images

__all__ = ["LLMUser", "OpenAIChatUser", "OpenAICompletionsUser", "LLMResult"]

_perf = time.perf_counter
ABORTED_PREFIX = "aborted: "  # kept in the message for readers; the kind decides, not the text

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
        self._acc: StreamAccumulator | None = None  # the stream being read, if any

    # -- public API -------------------------------------------------------------------------
    @property
    def model(self) -> str:
        """The model to ask for: ``--llm-model``, else the server's first ``/v1/models`` id."""
        return self.llm.resolve_model(self.host)

    def annotate(self, res: LLMResult) -> None:
        """Called once the send time (``res.t_start``) is known, before the request goes
        out: a subclass adds its own fields to the result (trace replay: the schedule lag),
        so they are in the record and the metrics like every other field."""

    def stream_request(
        self,
        path: str,
        body: dict[str, Any],
        *,
        name: str | None = None,
        prompt_tokens: int | None = None,
        queue_time: float = 0.0,
        images: tuple[int, int] = (0, 0),
        turn: int | None = None,
        session_id: str | None = None,
    ) -> LLMResult:
        """POST ``body`` to ``path`` with streaming and measure it. Never raises on failure:
        the failure is in Locust's stats and in ``result.error`` (``GreenletExit`` is re-raised
        after the request is recorded as aborted, so stopping users stays immediate).
        ``images``: (count, bytes) of the images in the body, for the record."""
        llm = self.llm
        name = name or path  # Locust shows it as type POST, name /v1/...
        if body.get("stream") is not True:
            return self._refuse(name, path, NOT_STREAMED.format(body.get("stream")))
        res = LLMResult(name=name, model=str(body.get("model", "")), queue_time=queue_time)
        res.max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        res.request_id = uuid.uuid4().hex
        res.images, res.image_bytes = images
        res.turn, res.session_id = turn, session_id
        cancel = llm.cancel.next() if llm.cancel is not None else None
        headers = {**self._headers, "X-Request-Id": res.request_id}
        if session_id is not None:
            headers["X-Session-Id"] = session_id
        auth = llm.auth_header
        if auth:
            headers["Authorization"] = auth
        data = orjson.dumps(body)
        res.t_start = time.time()
        self.annotate(res)
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
                        fail(
                            res,
                            TRANSPORT,
                            connect_error_key(err),
                            describe_connect_error(err, self.host),
                        )
                    elif res.status != 200:
                        fail(res, HTTP, f"HTTP {res.status}", error_message(res.status, _body(r)))
                    elif not _is_event_stream(r):
                        fail(res, PROTOCOL, "not an event stream", _not_a_stream(r))
                    else:
                        self._acc = None
                        if cancel is None:
                            self._read_stream(r, res, t0, prompt_tokens)
                        else:
                            self._read_cancelling(r, res, t0, prompt_tokens, cancel)
                except (gevent.GreenletExit, gevent.Timeout, KeyboardInterrupt) as e:
                    # users stopped, a timeout the caller put around chat(), or Ctrl-C landing
                    # in this greenlet: cancelled by the client, so aborted (not a server error
                    # and never a success with the tokens so far), and the exception goes on
                    _abort(res, e)
                    raise
                except (ProtocolError, SSEError) as e:
                    fail(res, PROTOCOL, "malformed stream", f"malformed stream: {e}")
                except TimeoutError:  # the socket's read timeout (socket.timeout)
                    fail(
                        res,
                        TRANSPORT,
                        "read timeout",
                        f"read timeout: no data for {self.network_timeout:g}s "
                        "(server stuck or queue too long? raise --llm-timeout)",
                    )
                except (ConnectionError, OSError) as e:
                    fail(
                        res,
                        TRANSPORT,
                        f"connection lost mid-stream: {type(e).__name__}",
                        f"connection lost mid-stream: {type(e).__name__}: {e}",
                    )
                except Exception as e:  # anything else must still be a counted failure
                    fail(res, CLIENT, type(e).__name__, f"{type(e).__name__}: {e}")
                finally:
                    if res.stream_closed is None:  # the stream was cut off before its end
                        res.stream_closed = (_perf() - t0) * 1000
                        if self._acc is not None and self._acc.res is res:
                            self._acc.cut_off()
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
                    elif res.error is not None and not res.cancelled:
                        r.failure(res.error)
                    elif not res.cancelled:
                        r.success()
                if res.cancelled:
                    # hung up on purpose: like an abort, neither a success nor a failure in
                    # Locust's rows (its cut-short time is no response time); leaving the
                    # block by an exception is how a caught response stays unreported
                    raise _Unreported
        except _Unreported:
            pass
        except (gevent.GreenletExit, gevent.Timeout, KeyboardInterrupt) as e:
            if res.error is None:  # stopped while connecting/sending: not a completed request
                _abort(res, e)
            raise
        except Exception as e:
            # raised before a response existed (e.g. the HTTP client refused a header): it must
            # be a counted failure, never a success with no tokens or a bare task traceback
            if res.error is None:
                msg = plugin.redact(f"request not sent: {type(e).__name__}: {e}", llm.api_key)
                fail(res, CLIENT, f"request not sent: {type(e).__name__}", msg)
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
        kind = res.error_key or kind_of(res.status, res.error or "")
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
        images: tuple[int, int] = (0, 0),
    ) -> LLMResult:
        """Shared by :meth:`chat` and :meth:`complete`: defaults from the options, then send."""
        llm = self.llm
        turn, session = extra.pop("turn", None), extra.pop("session_id", None)
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
            self.path,
            body,
            name=name,
            prompt_tokens=prompt_tokens,
            queue_time=queue_time,
            images=images,
            turn=turn,
            session_id=session,
        )

    def _refuse(self, name: str, path: str, error: str) -> LLMResult:
        """A request the locustfile asked for that cannot be measured: a counted failure with
        the reason (never sent), paced by the back-off like any failure that repeats at once."""
        res = LLMResult(name=name, model="")
        res.t_start = time.time()
        fail(res, CLIENT, "not streamed", error)
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
            fail(
                res, CLIENT, "model lookup failed", f"{e} (or pass --llm-model to skip the lookup)"
            )
            self._report_failure(res, self.path, 0.0)
            self.llm.collector.request_started(res.t_start)
            self.llm.finish(res)
            # the lookup is retried on the next request: pace it, or a closed loop would
            # record thousands of identical failures per second
            gevent.sleep(1.0)
            return res

    # -- the hot loop -------------------------------------------------------------------------
    def _read_stream(
        self, r: Any, res: LLMResult, t0: float, prompt_tokens: int | None
    ) -> StreamAccumulator:
        """Read the body into ``res`` read by read; the accumulator decides what bytes mean.

        ``self._acc`` is set first so that a stream cut off by the client (the greenlet
        killed inside a read) can still be recorded consistently.
        """
        # kernel receive stamps (--llm-timestamps): the socket carrying this response, taken
        # before the body is read (geventhttpclient drops it at message end)
        reader = StampReader.from_response(r) if self._kernel_ts else None
        acc = self._acc = StreamAccumulator(
            res, t0, reader.sock if reader is not None else None, self._on_token()
        )
        try:
            read_body(r.stream, acc.feed_block)
        except HTTPParseError:  # connection closed inside the chunked body: judged below
            pass
        acc.finish(_perf(), prompt_tokens, self.llm.output_tokenizer)
        return acc

    def _on_token(self) -> Any:
        """With --llm-token-events: the callback that shows listeners each chunk as it
        arrives (user-space time; kernel stamps, if any, replace the result's times once
        the stream has ended). None otherwise: the loop pays nothing."""
        if not self.llm.token_events:
            return None
        env = self.environment
        fire = env.events.llm_token.fire

        def on_token(result: LLMResult, index: int, t_ms: float, text: str) -> None:
            fire(result=result, index=index, t_ms=t_ms, text=text, environment=env)

        return on_token

    def _read_cancelling(
        self, r: Any, res: LLMResult, t0: float, prompt_tokens: int | None, after: CancelAfter
    ) -> None:
        """The stream of a request picked for cancellation: read until ``after``, then hang
        up; one that ends first is judged as any other (user-space stamps)."""
        acc = self._acc = StreamAccumulator(res, t0, None, self._on_token())
        if read_until_cancel(r, acc, after, t0):
            acc.hung_up(_perf(), prompt_tokens, self.llm.output_tokenizer)
            n = res.output_tokens
            fail(res, CANCELLED, "cancelled by the client", f"cancelled by the client "
                 f"{after.describe()} (--llm-cancel-after), {n} tokens received")  # fmt: skip
        else:
            acc.finish(_perf(), prompt_tokens, self.llm.output_tokenizer)


class _Unreported(Exception):
    """Leaves the response's block so that Locust records nothing for it."""


def _abort(res: LLMResult, e: BaseException) -> None:
    """Cut off by the client: a caller's timeout cancelled it, or the user was stopped."""
    if isinstance(e, gevent.Timeout):
        msg = f"{ABORTED_PREFIX}cancelled by a timeout around the request ({e})"
        fail(res, CALLER_TIMEOUT, "aborted: timeout around the request", msg)
    else:
        msg = f"{ABORTED_PREFIX}user stopped while the request was in flight"
        fail(res, ABORTED, "aborted: user stopped", msg)


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
        images: int | None = None,
        **extra: Any,
    ) -> LLMResult:
        """One streamed chat request; ``extra`` goes into the body (temperature, model...),
        except ``turn``/``session_id`` (a conversation's turn: per-turn figures, X-Session-Id).
        ``images``: generated PNGs to add to the last user message (default: as many as
        ``--llm-images`` draws, sized by ``--llm-image-size``)."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        imgs = self.llm.images.next(images)
        if imgs:
            messages = attach_images(messages, imgs)
        sent = (len(imgs), sum(n for _, n in imgs))
        return self._send(
            chat_body, messages, max_tokens, name, prompt_tokens, queue_time, extra, sent
        )


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
