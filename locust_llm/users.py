"""Locust users that stream OpenAI-compatible requests and time every token chunk.

The stream loop is the hot path of the whole tool: at 100k+ tokens/s in one process every
microsecond per chunk is a percent of the client's CPU, and any CPU the client burns shows up
as latency it attributes to the server. So the body is read one socket read at a time
(``body.read_body``), each read gets one clock reading and is framed as SSE in one pass by the
accumulator (``StreamAccumulator.feed_block``), each event is decoded with one
``orjson.loads``, and everything else (histograms, stats rows, records) waits for the end of
the request.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import gevent
import orjson
from geventhttpclient.response import HTTPParseError
from locust import FastHttpUser

from locust_llm import plugin
from locust_llm.accounting import RequestAccounting, Unreported
from locust_llm.backoff import Backoff
from locust_llm.body import read_body
from locust_llm.errors import (
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
from locust_llm.responses import NOT_STREAMED, abort, is_event_stream, not_a_stream, response_body
from locust_llm.sse import SSEError
from locust_llm.stream import StreamAccumulator
from locust_llm.timestamps import StampReader
from locust_llm.workload.cancel import CancelAfter
from locust_llm.workload.images import attach_images

__all__ = ["LLMUser", "OpenAIChatUser", "OpenAICompletionsUser", "LLMResult"]

_perf = time.perf_counter


class LLMUser(RequestAccounting, FastHttpUser):
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
        with self._accounted(res, path, t0):
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
                        fail(
                            res,
                            HTTP,
                            f"HTTP {res.status}",
                            error_message(res.status, response_body(r)),
                        )
                    elif not is_event_stream(r):
                        fail(res, PROTOCOL, "not an event stream", not_a_stream(r))
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
                    abort(res, e)
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
                    raise Unreported
        return res

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
