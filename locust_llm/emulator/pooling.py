"""Pooling endpoints as vLLM 0.32 serves them: ``/v1/embeddings``, ``/rerank`` (and
``/v1/rerank``, ``/v2/rerank``), ``/score`` (and ``/v1/score``).

vLLM registers these routes only for a pooling model (``--runner pooling``, or ``--convert
embed|classify``); a generation model answers them with FastAPI's 404, and a pooling model
has no chat/completions routes. The task decides what is served: ``embed`` gives embeddings
and scoring by cosine similarity (a bi-encoder: the query and every document are separate
engine requests), ``classify`` gives scoring only (a cross-encoder: one engine request per
query/document pair). Each engine request is a prefill-only sequence in the emulator's engine,
so latency comes from the same prefill model, queueing and batching as generation; vLLM's
/metrics count each as one request finished with reason ``stop``, its prompt tokens, TTFT and
E2E. Vectors are deterministic: seeded by the input's text (or token ids) and ``--emu-seed``,
unit length as vLLM normalises them.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import numpy as np
import orjson

from . import text as textmod
from . import wire
from .engine import QueueFull, Seq
from .faults import MESSAGES, STREAM_FAULTS

__all__ = ["POOLING_ROUTES", "pooling_task", "PoolingHandler"]

perf_counter = time.perf_counter

# path -> endpoint kind
POOLING_ROUTES = {
    "/v1/embeddings": "embed",
    "/rerank": "rerank",
    "/v1/rerank": "rerank",
    "/v2/rerank": "rerank",
    "/score": "score",
    "/v1/score": "score",
}
NOT_FOUND = b'{"detail":"Not Found"}'


def pooling_task(runner: str, convert: str) -> str | None:
    """The pooling task vLLM would run (``embed`` / ``classify``), or None for generation."""
    if convert in ("embed", "classify"):
        return convert
    return "embed" if runner == "pooling" else None


def serves(task: str | None, kind: str) -> bool:
    """Whether vLLM registers the route of ``kind`` for ``task`` (scoring: embed or a
    one-label classifier, which is what a reranker is)."""
    if task is None:
        return False
    return kind != "embed" or task == "embed"


class _Bad(Exception):
    def __init__(self, code: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def _tokens(item: Any) -> int:
    if isinstance(item, str):
        return textmod.count_text_tokens(item)
    return len(item)


def _key(item: Any) -> bytes:
    return item.encode() if isinstance(item, str) else orjson.dumps(item)


def _inputs(value: Any) -> list[Any]:
    """``input`` as vLLM's CompletionRequestMixin accepts it: a string, a list of strings,
    token ids or lists of token ids."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        if all(isinstance(v, int) for v in value) and value:
            return [value]
        if all(isinstance(v, str) for v in value) or all(
            isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value
        ):
            return list(value)
    raise _Bad(400, "input must be a string, a list of strings or of token ids", "input")


def _texts(value: Any, field: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _Bad(400, f"{field} must be a string or a list of strings", field)


class PoolingHandler:
    """Answers the pooling routes for one :class:`EmulatorApp` (its engine, metrics, auth)."""

    def __init__(self, app: Any, task: str | None, dim: int) -> None:
        self.app = app
        self.task = task
        self.dim = dim

    def vector(self, item: Any) -> np.ndarray:
        h = hashlib.blake2b(_key(item), digest_size=8, key=str(self.app.cfg.seed).encode())
        v = np.random.default_rng(int.from_bytes(h.digest(), "little")).standard_normal(self.dim)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def __call__(self, environ: dict, start_response: Any, path: str) -> list[bytes]:
        app = self.app
        kind = POOLING_ROUTES[path]
        if not serves(self.task, kind):
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [NOT_FOUND]
        try:
            return self._serve(environ, start_response, kind)
        except _Bad as b:
            app._count_request()
            return app._error(start_response, b.code, b.message, b.param)

    def _serve(self, environ: dict, start_response: Any, kind: str) -> list[bytes]:
        app, cfg = self.app, self.app.cfg
        arrival = perf_counter()
        if not app._authorized(environ):
            start_response("401 Unauthorized", [("Content-Type", "application/json")])
            return [wire.UNAUTHORIZED]
        if app.dead:
            raise _Bad(503, "The engine is dead (emulated fault).")
        if perf_counter() < app.ready_at:
            raise _Bad(503, "The server is starting up.")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            stream = environ["wsgi.input"]
            req = orjson.loads(stream.read(length) if length else stream.read())
            if not isinstance(req, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as e:
            raise _Bad(400, f"Invalid request body: {e}") from None
        model = req.get("model")
        if model is not None and model not in cfg.served_model_names:
            # the pooling routes' own check: no aliases, no param (unlike chat/completions)
            raise _Bad(404, f"The model `{model}` does not exist.")
        model = model or app.model_name
        rid_base = environ.get("HTTP_X_REQUEST_ID") or uuid.uuid4().hex[:16]
        if kind == "embed":
            items = _inputs(req.get("input"))
            if not items:
                raise _Bad(400, "You must pass at least one prompt")
            self._run(self._checked([(_tokens(i), i) for i in items], environ), arrival)
            created = int(time.time())
            data = [
                {"index": k, "object": "embedding", "embedding": self.vector(i).tolist()}
                for k, i in enumerate(items)
            ]
            n = sum(_tokens(i) for i in items)
            body = {"id": f"embd-{rid_base}", "object": "list", "created": created,
                    "model": model, "data": data, "usage": _usage(n)}  # fmt: skip
            return app._json(start_response, "200 OK", orjson.dumps(body))
        if kind == "rerank":
            if not isinstance(req.get("query"), str):
                raise _Bad(400, "query must be a string", "query")
            queries, docs = [req["query"]], _texts(req.get("documents"), "documents")
            top_n = req.get("top_n", 0)
            if not isinstance(top_n, int) or top_n < 0:
                raise _Bad(400, "top_n must be an integer >= 0", "top_n")
        else:
            queries, docs = _texts(req.get("text_1"), "text_1"), _texts(req.get("text_2"), "text_2")
        if not queries:
            raise _Bad(400, "At least one text element must be given")
        if not docs:
            raise _Bad(400, "At least one text_pair element must be given")
        if len(queries) != 1 and len(queries) != len(docs):
            raise _Bad(400, "Input lengths must be either 1:1, 1:N or N:N")
        pairs = [(queries[0] if len(queries) == 1 else queries[k], d) for k, d in enumerate(docs)]
        if self.task == "embed":  # bi-encoder: queries and documents embedded separately
            work = [(_tokens(x), x) for x in queries + docs]
        else:  # cross-encoder: one sequence per pair
            work = [(_tokens(q) + _tokens(d), q + "\n" + d) for q, d in pairs]
        self._run(self._checked(work, environ), arrival)
        n = sum(t for t, _ in work)
        scores = [self.score(q, d) for q, d in pairs]
        if kind == "score":
            body = {"id": f"score-{rid_base}", "object": "list", "created": int(time.time()),
                    "model": model,
                    "data": [{"index": k, "object": "score", "score": s}
                             for k, s in enumerate(scores)],
                    "usage": _usage(n)}  # fmt: skip
            return app._json(start_response, "200 OK", orjson.dumps(body))
        results = [
            {"index": k, "document": {"text": d, "multi_modal": None}, "relevance_score": s}
            for k, (d, s) in enumerate(zip(docs, scores, strict=True))
        ]
        results.sort(key=lambda r: r["relevance_score"], reverse=True)
        if top_n and top_n < len(docs):
            results = results[:top_n]
        body = {"id": f"score-{rid_base}", "model": model,
                "usage": {"prompt_tokens": n, "total_tokens": n}, "results": results}  # fmt: skip
        return app._json(start_response, "200 OK", orjson.dumps(body))

    def score(self, query: str, doc: str) -> float:
        """Cosine similarity for an embedding model; a probability for a classifier."""
        cos = float(np.dot(self.vector(query), self.vector(doc)))
        return cos if self.task == "embed" else (cos + 1.0) / 2.0

    def _checked(self, work: list[tuple[int, Any]], environ: dict) -> list[tuple[int, Any]]:
        """vLLM's length check per engine request, then the emulated faults (HTTP errors
        only: a pooling answer has no stream to cut)."""
        limit = self.app.cfg.max_model_len
        for tokens, _ in work:
            if tokens > limit:
                raise _Bad(
                    400,
                    f"This model's maximum context length is {limit} tokens. However, your "
                    f"prompt contains at least {tokens} input tokens, which exceeds this limit "
                    "even without any output tokens. Please reduce the length of the input "
                    f"prompt. (parameter=input_tokens, value={tokens})",
                    "input_tokens",
                )
        fault = self.app.faults.decide(environ.get("HTTP_X_RETURN_ERROR"))
        if fault == "dead":
            self.app.dead = True
            raise _Bad(503, "The engine died (emulated fault).")
        if fault is not None and fault not in STREAM_FAULTS:
            raise _Bad(int(fault), MESSAGES.get(int(fault), "Emulated fault."))
        return work

    def _run(self, work: list[tuple[int, Any]], arrival: float) -> None:
        """Each (tokens, item) as one prefill-only engine request; returns when all are done."""
        app = self.app
        seqs = []
        try:
            for tokens, _item in work:
                # no prefix-cache keys: pooling prefills are not cached here
                seq = Seq(max(tokens, 1), 1, arrival)
                app.engine.submit(seq)
                seqs.append(seq)
        except QueueFull as e:
            for s in seqs:
                app.engine.finish(s)
            raise _Bad(503, f"Service unavailable: {e}.") from None
        app.in_flight += 1
        try:
            for s in seqs:
                for _ in app.engine.deliveries(s, 1 << 30):
                    pass
        finally:
            now = perf_counter()
            for s, (tokens, _) in zip(seqs, work, strict=True):
                app.engine.finish(s)
                app.metrics.prompt_tokens.inc(tokens)
                ttft = s.first_token_at - arrival if s.first_token_at is not None else None
                queue = (s.admitted_at or now) - arrival
                app.metrics.finished("stop" if ttft is not None else "abort", ttft, now - arrival,
                                     queue)  # fmt: skip
            app.in_flight -= 1
            app._count_request()


def _usage(n: int) -> dict[str, Any]:
    """vLLM's UsageInfo for a pooling answer: prompt tokens only."""
    return wire._usage_dict(n, 0)
