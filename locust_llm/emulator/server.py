"""HTTP front: gevent's pywsgi serving vLLM's OpenAI endpoints over the engine model.

pywsgi writes each value the application yields as one HTTP chunk (chunked transfer encoding,
as uvicorn does) and supports keep-alive; the handler subclass adds TCP_NODELAY (paced streams
must not wait for Nagle), exposes the socket to the app (for truncate/reset faults) and turns
``Abort`` into a cut connection. Responses follow vLLM 0.33 (see ``wire``).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import gevent
import orjson
from gevent.pywsgi import WSGIHandler, WSGIServer

from . import text as textmod
from . import wire
from .cli import Config
from .engine import QueueFull, Seq, make_engine, prefix_blocks
from .faults import MESSAGES, STREAM_FAULTS, FaultInjector
from .metrics import CONTENT_TYPE, EngineMetrics
from .truthlog import TruthLog

log = logging.getLogger("locust_llm.emulator")
perf_counter = time.perf_counter
VLLM_VERSION = "0.33.0"

_JSON = [("Content-Type", "application/json")]
_SSE = [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-cache")]


class Abort(Exception):
    """Raised inside a response body: cut the connection (FIN, or RST when ``reset``)."""

    def __init__(self, reset: bool) -> None:
        super().__init__("reset" if reset else "truncate")
        self.reset = reset


class _Handler(WSGIHandler):
    def handle(self):
        try:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return super().handle()

    def process_result(self):
        try:
            super().process_result()
        except Abort as a:
            self.close_connection = True
            try:
                if a.reset:
                    self.socket.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                else:
                    self.socket.shutdown(socket.SHUT_RDWR)
                self.socket.close()
            except OSError:
                pass


class EmulatorApp:
    """The WSGI application; one per process."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.model_name = cfg.served_model_names[0]
        self.started = time.time()
        self.ready_at = perf_counter() + cfg.startup_delay
        self.dead = False
        self.in_flight = 0
        self.n_requests = 0
        self.n_done = 0
        self.metrics = EngineMetrics(self.model_name, self._gauges)
        self.engine = make_engine(cfg, self.metrics)
        self.text = textmod.TextSource(cfg.seed)
        self.faults = FaultInjector(cfg.fault_rate, cfg.fault_types, cfg.seed)
        self.truth = TruthLog(cfg.truth_log) if cfg.truth_log else None
        self.block_chars = cfg.block_size * textmod.CHARS_PER_TOKEN

    def _gauges(self) -> tuple[int, int, float]:
        return self.engine.num_running, self.engine.num_waiting, self.engine.kv_usage()

    def close(self) -> None:
        if self.truth is not None:
            self.truth.close()
            self.truth = None

    # -- plumbing --
    @staticmethod
    def _json(start_response, status: str, body: bytes, headers=None):
        start_response(status, _JSON + (headers or []))
        return [body]

    def _error(self, start_response, code: int, message: str, param: str | None = None):
        reason = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
                  500: "Internal Server Error", 503: "Service Unavailable"}.get(code, "Error")  # fmt: skip
        return self._json(start_response, f"{code} {reason}", wire.error_body(code, message, param))

    def info(self) -> dict:
        """What /version and /emulator/info report: placement and effective settings."""
        try:
            affinity = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            affinity = None
        kv = getattr(self.engine, "capacity", None)
        return {
            "pid": os.getpid(),
            "model": self.cfg.model,
            "served_model_names": self.cfg.served_model_names,
            "tp": self.cfg.tp,
            "profile": self.cfg.profile.name,
            "env": {
                k: os.environ.get(k)
                for k in (
                    "CUDA_VISIBLE_DEVICES",
                    "VLLM_CPU_OMP_THREADS_BIND",
                    "VLLM_CPU_KVCACHE_SPACE",
                )
            },
            "cpu_affinity": affinity,
            "kv_capacity_tokens": kv,
            "args": self.cfg.as_dict(),
            "ignored_flags": self.cfg.ignored_flags,
        }

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
            return self._inference(environ, start_response, path == "/v1/chat/completions")
        if path.startswith("/v1/") and not self._authorized(environ):
            return self._json(start_response, "401 Unauthorized", wire.UNAUTHORIZED)
        if path == "/health":
            if self.dead or perf_counter() < self.ready_at:
                start_response("503 Service Unavailable", _JSON)
                return [b""]
            start_response("200 OK", _JSON)
            return [b""]
        if path == "/ping":
            ok = not self.dead and perf_counter() >= self.ready_at
            start_response("200 OK" if ok else "503 Service Unavailable", _JSON)
            return [b"{}"]
        if path == "/version":
            return self._json(
                start_response,
                "200 OK",
                orjson.dumps({"version": VLLM_VERSION, "emulator": self.info()}),
            )
        if path == "/emulator/info":
            return self._json(start_response, "200 OK", orjson.dumps(self.info()))
        if path == "/load":
            return self._json(
                start_response, "200 OK", orjson.dumps({"server_load": self.in_flight})
            )
        if path == "/metrics":
            start_response("200 OK", [("Content-Type", CONTENT_TYPE)])
            return [self.metrics.render()]
        if path == "/v1/models":
            return self._json(start_response, "200 OK", self._models())
        start_response("404 Not Found", _JSON)
        return [b'{"detail":"Not Found"}']

    def _authorized(self, environ) -> bool:
        key = self.cfg.api_key
        return key is None or environ.get("HTTP_AUTHORIZATION", "") == f"Bearer {key}"

    def _models(self) -> bytes:
        created = int(self.started)
        data = [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": self.cfg.model,
                "parent": None,
                "max_model_len": self.cfg.max_model_len,
                "permission": [
                    {
                        "id": f"modelperm-{uuid.uuid4().hex[:16]}",
                        "object": "model_permission",
                        "created": int(time.time()),
                        "allow_create_engine": False,
                        "allow_sampling": True,
                        "allow_logprobs": True,
                        "allow_search_indices": False,
                        "allow_view": True,
                        "allow_fine_tuning": False,
                        "organization": "*",
                        "group": None,
                        "is_blocking": False,
                    }
                ],
            }
            for name in self.cfg.served_model_names
        ]
        return orjson.dumps({"object": "list", "data": data})

    def _count_request(self) -> None:
        self.n_done += 1
        if self.cfg.crash_after and self.n_done >= self.cfg.crash_after:
            if self.truth is not None:
                self.truth.flush()
            log.warning("--emu-crash-after %d reached: exiting hard", self.cfg.crash_after)
            gevent.spawn(os._exit, 3)

    # -- inference --
    def _inference(self, environ, start_response, chat: bool):
        arrival = perf_counter()
        try:
            return self._inference_inner(environ, start_response, chat, arrival)
        except _Reject as r:
            self._count_request()
            if r.code == 401:  # vLLM's auth middleware answers before any OpenAI error model
                return self._json(start_response, "401 Unauthorized", wire.UNAUTHORIZED)
            return self._error(start_response, r.code, r.message, r.param)

    def _inference_inner(self, environ, start_response, chat: bool, arrival: float):
        cfg = self.cfg
        if not self._authorized(environ):
            raise _Reject(401, "Unauthorized")
        if self.dead:
            raise _Reject(503, "The engine is dead (emulated fault).")
        if perf_counter() < self.ready_at:
            raise _Reject(503, "The server is starting up.")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
            req = orjson.loads(raw)
            if not isinstance(req, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as e:
            raise _Reject(400, f"Invalid request body: {e}") from None
        model = req.get("model")
        if model is not None and model not in cfg.served_model_names:
            aliases = ", ".join(cfg.served_model_names)
            raise _Reject(
                404, f"The model `{model}` does not exist. Valid aliases: {aliases}.", "model"
            )
        model = model or self.model_name
        try:
            if chat:
                messages = req.get("messages")
                if not isinstance(messages, list) or not messages:
                    raise ValueError("messages must be a non-empty list")
                prompt_text, prompt_tokens = textmod.chat_prompt(messages)
            else:
                prompt_text, prompt_tokens = textmod.completion_prompt(req.get("prompt"))
        except ValueError as e:
            raise _Reject(400, str(e)) from None
        if (req.get("n") or 1) != 1:
            raise _Reject(400, "The emulator supports n=1 only.", "n")
        max_tokens = req.get("max_completion_tokens") if chat else None
        if max_tokens is None:
            max_tokens = req.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise _Reject(400, "max_tokens must be at least 1.", "max_tokens")
        limit = cfg.max_model_len - prompt_tokens
        if max_tokens is not None and max_tokens > cfg.max_model_len:
            raise _Reject(
                400,
                f"max_tokens={max_tokens} cannot be greater than max_model_len="
                f"{cfg.max_model_len}. Please request fewer output tokens. "
                f"(parameter=max_tokens, value={max_tokens})",
                "max_tokens",
            )
        if limit < 0:
            raise _Reject(
                400,
                f"This model's maximum context length is {cfg.max_model_len} tokens. However, "
                f"your prompt contains at least {prompt_tokens} input tokens, which exceeds this "
                "limit even without any output tokens. Please reduce the length of the input "
                f"prompt. (parameter=input_tokens, value={prompt_tokens})",
                "input_tokens",
            )
        if limit <= 0 or (max_tokens is not None and max_tokens > limit):
            raise _Reject(
                400,
                f"This model's maximum context length is {cfg.max_model_len} tokens. However, you "
                f"requested {prompt_tokens + (max_tokens or 0)} tokens ({prompt_tokens} in the "
                f"messages, {max_tokens or 0} in the completion). Please reduce the length of the "
                "messages or completion.",
                "max_tokens" if limit > 0 else "messages" if chat else "prompt",
            )
        fault = self.faults.decide(environ.get("HTTP_X_RETURN_ERROR"))
        if fault == "dead":
            self.dead = True
            raise _Reject(503, "The engine died (emulated fault).")
        if fault is not None and fault not in STREAM_FAULTS:
            code = int(fault)
            raise _Reject(code, MESSAGES.get(code, "Emulated fault."))

        self.n_requests += 1
        idx = self.n_requests
        rng = random.Random(cfg.seed * 1_000_003 + idx)
        n, finish, stop_reason, last_text, start = self._plan_output(
            req, prompt_text, max_tokens, limit, rng
        )
        seq = Seq(
            prompt_tokens,
            n,
            arrival,
            prefix_blocks(prompt_text, self.block_chars),
            jitter_seed=rng.getrandbits(64),
        )
        try:
            self.engine.submit(seq)
        except QueueFull as e:
            raise _Reject(503, f"Service unavailable: {e}.") from None
        self.in_flight += 1
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        created = int(time.time())
        out = _Output(
            app=self,
            seq=seq,
            chat=chat,
            rid=rid,
            created=created,
            model=model,
            prompt_tokens=prompt_tokens,
            start=start,
            finish=finish,
            stop_reason=stop_reason,
            last_text=last_text,
            fault=fault,
            session=environ.get("HTTP_X_SESSION_ID"),
        )
        if req.get("stream"):
            so = req.get("stream_options") or {}
            enc = wire.StreamEncoder(
                chat,
                rid,
                created,
                model,
                prompt_tokens,
                bool(so.get("include_usage")),
                bool(so.get("continuous_usage_stats")),
            )
            write = start_response("200 OK", _SSE)
            return out.stream(enc, write)
        return out.blocking(start_response)

    def _plan_output(
        self, req: dict, prompt_text: str, max_tokens: int | None, limit: int, rng: random.Random
    ):
        """(n tokens, finish_reason, stop_reason, last token text override, stream offset)."""
        cfg = self.cfg
        min_tokens = int(req.get("min_tokens") or 0)
        if max_tokens is None:
            n = min(max(cfg.natural_len, min_tokens), limit)
            finish = "stop" if n < limit else "length"
        else:
            n, finish = max_tokens, "length"
        if not req.get("ignore_eos"):
            eos = textmod.draw_eos_length(rng, cfg.eos_prob, min_tokens, n)
            if eos is not None:
                n, finish = eos, "stop"
        start = self.text.offset(prompt_text)
        stop = req.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        if stop:
            k, last, matched = textmod.apply_stop(self.text.words_at(start, n), list(stop))
            if matched is not None:
                return k, "stop", matched, textmod.escape(last), start
        return n, finish, None, None, start


class _Reject(Exception):
    def __init__(self, code: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


@dataclass(eq=False, kw_only=True)
class _Output:
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
    reason: str = field(init=False, default="abort")
    written: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.t_send = [] if self.app.truth is not None else None

    def _pieces(self, lo: int, hi: int) -> list[bytes]:
        pieces = self.app.text.escaped_at(self.start + lo, hi - lo)
        if self.last_text is not None and hi == self.seq.n_out:
            pieces = list(pieces)
            pieces[-1] = self.last_text
        return pieces

    def _cut(self) -> int:
        """Tokens written before a stream fault strikes (half of them, at least one)."""
        return max(1, self.seq.n_out // 2) if self.fault in STREAM_FAULTS else self.seq.n_out

    def stream(self, enc: wire.StreamEncoder, write):
        app, seq = self.app, self.seq
        metrics = app.metrics
        n = seq.n_out
        cut = self._cut()
        per_tok = len(enc.sep) + 8
        max_batch = max(1, app.cfg.write_bytes // per_tok)
        last_t = 0.0
        try:
            write(b"")  # headers now, as uvicorn's StreamingResponse does
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
                    metrics.prompt_tokens.inc(self.prompt_tokens)
                    if self.chat:
                        data = enc.role_chunk() + data
                        if self.t_send is not None:
                            self.t_send.append(t)
                    metrics.itl.observe_many(0.0, hi - lo - 1)
                else:
                    metrics.itl.observe(t - last_t)
                    metrics.itl.observe_many(0.0, hi - lo - 1)
                last_t = t
                if self.t_send is not None:
                    self.t_send.extend([t] * (hi - lo))
                metrics.generation_tokens.inc(hi - lo)
                self.written = hi
                yield data
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
                tail = enc.usage_chunk(n) if enc.include_usage else b""
                self.reason = self.finish
                yield tail + wire.DONE
        finally:
            self._done()

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
            app.metrics.prompt_tokens.inc(self.prompt_tokens)
            app.metrics.generation_tokens.inc(seq.n_out)
            text = "".join(app.text.words_at(self.start, seq.n_out))
            if self.last_text is not None:
                words = app.text.words_at(self.start, seq.n_out)
                text = "".join(words[:-1]) + orjson.loads(b'"' + self.last_text + b'"')
            build = wire.chat_response if self.chat else wire.completion_response
            body = build(self.rid, self.created, self.model, text, self.finish, self.stop_reason,
                         self.prompt_tokens, seq.n_out)  # fmt: skip
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
                finish_reason=self.reason,
                session_id=self.session,
            )
        app._count_request()


def _raise_abort(reset: bool):
    raise Abort(reset)
    yield b""  # pragma: no cover - makes this a generator


def serve(cfg: Config, ready_file=None) -> tuple[WSGIServer, EmulatorApp]:
    """Bind, start serving (in the gevent hub), print the ready line; return server and app."""
    app = EmulatorApp(cfg)
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    listener = gevent.socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((cfg.host, cfg.port))
    listener.listen(2048)
    server = WSGIServer(listener, app, handler_class=_Handler, log=None)
    server.start()
    port = listener.getsockname()[1]
    host = f"[{cfg.host}]" if family == socket.AF_INET6 else cfg.host
    print(
        f"locust-llm emulator: serving {cfg.served_model_names[0]} on http://{host}:{port}",
        flush=True,
    )
    return server, app
