"""HTTP front: gevent's pywsgi serving vLLM's OpenAI endpoints over the engine model.

pywsgi writes each value the application yields as one HTTP chunk (chunked transfer encoding,
as uvicorn does) and supports keep-alive; the handler subclass adds TCP_NODELAY (paced streams
must not wait for Nagle), closes connections idle past ``--emu-timeout-keep-alive`` (uvicorn's
``timeout_keep_alive``), exposes the socket to the app (for truncate/reset faults) and turns
``Abort`` into a cut connection. Responses follow vLLM 0.32 (see ``wire``). Here: the routes
and the process-wide state; ``request`` reads and checks an inference request, ``output``
writes its answer.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import struct
import time
import uuid

import gevent
import orjson
from gevent.pywsgi import WSGIHandler, WSGIServer

from . import request, wire
from . import text as textmod
from .cli import Config
from .disconnect import ClientGone
from .engine import QueueFull, Seq, make_engine
from .faults import MESSAGES, STREAM_FAULTS, FaultInjector
from .metrics import CONTENT_TYPE, EngineMetrics
from .output import Abort, Output
from .pooling import POOLING_ROUTES, PoolingHandler, pooling_task
from .request import Reject
from .truthlog import TruthLog

log = logging.getLogger("locust_llm.emulator")
perf_counter = time.perf_counter

_JSON = [("Content-Type", "application/json")]
_SSE = [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-cache")]


class _Handler(WSGIHandler):
    def handle(self):
        try:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return super().handle()

    def read_requestline(self):
        # uvicorn (vLLM's server) closes a keep-alive connection left idle for
        # timeout_keep_alive seconds, so clients must cope with it here too; "" ends the
        # connection as a client's close does
        idle = self.server.application.cfg.timeout_keep_alive
        if not idle:
            return super().read_requestline()
        with gevent.Timeout(idle, False):
            return super().read_requestline()
        return ""

    def get_environ(self):
        env = super().get_environ()
        env["emulator.socket"] = self.socket  # watched for the client going away
        return env

    def process_result(self):
        try:
            super().process_result()
        except ClientGone:
            self.close_connection = True
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
        self.task = pooling_task(cfg.runner, cfg.convert)  # None: a generation model
        self.pooling = PoolingHandler(self, self.task, cfg.embed_dim)

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
        if method == "POST" and path in POOLING_ROUTES:
            return self.pooling(environ, start_response, path)
        if method == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
            if self.task is not None:  # vLLM has no generation routes for a pooling model
                start_response("404 Not Found", _JSON)
                return [b'{"detail":"Not Found"}']
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
                orjson.dumps({"version": wire.VLLM_VERSION, "emulator": self.info()}),
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
        except Reject as r:
            self._count_request()
            if r.code == 401:  # vLLM's auth middleware answers before any OpenAI error model
                return self._json(start_response, "401 Unauthorized", wire.UNAUTHORIZED)
            return self._error(start_response, r.code, r.message, r.param)

    def _inference_inner(self, environ, start_response, chat: bool, arrival: float):
        cfg = self.cfg
        if not self._authorized(environ):
            raise Reject(401, "Unauthorized")
        if self.dead:
            raise Reject(503, "The engine is dead (emulated fault).")
        if perf_counter() < self.ready_at:
            raise Reject(503, "The server is starting up.")
        r = request.read(cfg, environ, chat)
        fault = self.faults.decide(environ.get("HTTP_X_RETURN_ERROR"))
        if fault == "dead":
            self.dead = True
            raise Reject(503, "The engine died (emulated fault).")
        if fault is not None and fault not in STREAM_FAULTS:
            code = int(fault)
            raise Reject(code, MESSAGES.get(code, "Emulated fault."))

        self.n_requests += 1
        rng = random.Random(cfg.seed * 1_000_003 + self.n_requests)
        plan = request.plan_output(cfg, r, self.text, rng)
        seq = Seq(r.prompt_tokens, plan.n, arrival, r.blocks, jitter_seed=rng.getrandbits(64))
        try:
            self.engine.submit(seq)
        except QueueFull as e:
            raise Reject(503, f"Service unavailable: {e}.") from None
        self.in_flight += 1
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        created = int(time.time())
        model = r.model or self.model_name
        out = Output(
            app=self,
            seq=seq,
            chat=chat,
            rid=rid,
            created=created,
            model=model,
            prompt_tokens=r.prompt_tokens,
            start=plan.start,
            finish=plan.finish,
            stop_reason=plan.stop_reason,
            last_text=plan.last_text,
            fault=fault,
            session=environ.get("HTTP_X_SESSION_ID"),
        )
        if r.stream:
            so = r.body.get("stream_options") or {}
            enc = wire.StreamEncoder(
                chat,
                rid,
                created,
                model,
                r.prompt_tokens,
                bool(so.get("include_usage")),
                bool(so.get("continuous_usage_stats")),
            )
            write = start_response("200 OK", _SSE)
            return out.stream(enc, write, environ.get("emulator.socket"))
        return out.blocking(start_response)


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
