"""The Locust user for pooling endpoints: ``embed()`` (``/v1/embeddings``) and ``rerank()``
(``/v1/rerank``).

A pooling request is one JSON answer, not a stream, so it has one latency and no token
timings; everything else is the streaming users' machinery (:class:`LLMUser`): the model
from ``--llm-model`` or ``/v1/models``, the API key, the back-off after failures that repeat
at once, the error kinds, the Locust stats row and the collector. Bodies and answer checks
are pure (``locust_llm.pooling``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import gevent
import orjson

from locust_llm import plugin
from locust_llm.errors import (
    CLIENT,
    HTTP,
    PROTOCOL,
    TRANSPORT,
    connect_error_key,
    describe_connect_error,
    fail,
)
from locust_llm.metrics.locust_grid import on_locust_grid
from locust_llm.metrics.record import LLMResult
from locust_llm.pooling import (
    EMBEDDINGS_PATH,
    RERANK_PATH,
    PoolingInputError,
    embeddings_body,
    not_served,
    parse_answer,
    rerank_body,
    route_missing,
)
from locust_llm.protocol import ProtocolError, error_message
from locust_llm.responses import abort, response_body
from locust_llm.users import LLMUser

__all__ = ["OpenAIEmbeddingsUser"]

_perf = time.perf_counter


class OpenAIEmbeddingsUser(LLMUser):
    """Sends ``/v1/embeddings`` and ``/v1/rerank`` requests. Subclass it and call
    :meth:`embed` or :meth:`rerank` from tasks; both return the :class:`LLMResult`
    (``e2e`` the latency, ``prompt_tokens`` the usage, ``items`` the inputs/documents)."""

    abstract = True
    path = EMBEDDINGS_PATH

    def embed(self, inputs: list[str] | str, name: str | None = None, **body: Any) -> LLMResult:
        """One embeddings request for ``inputs``; ``body`` goes into the JSON as is."""
        model = body.pop("model", None) or self._resolve_model(name or EMBEDDINGS_PATH)
        if isinstance(model, LLMResult):
            return model
        try:
            req = embeddings_body(model, inputs, **body)
        except PoolingInputError as e:
            return self._refuse(name or EMBEDDINGS_PATH, EMBEDDINGS_PATH, str(e), "bad input", 0)
        return self.pooling_request(EMBEDDINGS_PATH, req, len(req["input"]), name=name)

    def rerank(
        self,
        query: str,
        documents: list[str],
        top_n: int | None = None,
        *,
        name: str | None = None,
        **body: Any,
    ) -> LLMResult:
        """One rerank request: ``documents`` scored against ``query`` (``top_n``: how many
        results the server returns; every document is scored either way)."""
        model = body.pop("model", None) or self._resolve_model(name or RERANK_PATH)
        if isinstance(model, LLMResult):
            return model
        try:
            req = rerank_body(model, query, documents, top_n, **body)
        except PoolingInputError as e:
            return self._refuse(name or RERANK_PATH, RERANK_PATH, str(e), "bad input", 0)
        return self.pooling_request(RERANK_PATH, req, len(req["documents"]), name=name, top_n=top_n)

    def pooling_request(
        self,
        path: str,
        body: dict[str, Any],
        items: int,
        *,
        name: str | None = None,
        top_n: int | None = None,
    ) -> LLMResult:
        """POST ``body`` to ``path`` and measure it. Never raises on failure (the failure is
        in Locust's stats and ``result.error``), except ``GreenletExit`` after recording."""
        llm = self.llm
        name = name or path
        res = LLMResult(name=name, model=str(body.get("model", "")), items=items)
        res.request_id = uuid.uuid4().hex
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "X-Request-Id": res.request_id,
        }
        if llm.auth_header:
            headers["Authorization"] = llm.auth_header
        data = orjson.dumps(body)
        res.t_start = time.time()
        res.warmup = llm.in_warmup(res.t_start)
        llm.collector.request_started(res.t_start)
        t0 = _perf()
        with self._accounted(res, path, t0):
            with self.client.request(
                "POST", path, name=name, data=data, headers=headers, catch_response=True
            ) as r:
                # the body is read inside request(): this is the whole answer's latency
                took = res.stream_closed = (_perf() - t0) * 1000
                try:
                    res.status = r.status_code or 0
                    err = getattr(r, "error", None)
                    if err is not None and not res.status:
                        key = connect_error_key(err)
                        fail(res, TRANSPORT, key, describe_connect_error(err, self.host))
                    elif route_missing(res.status, content := response_body(r)):
                        fail(res, HTTP, f"{path} not served", not_served(path, self.host))
                    elif res.status != 200:
                        fail(res, HTTP, f"HTTP {res.status}", error_message(res.status, content))
                    else:
                        answer = parse_answer(path, content, items, top_n)
                        res.prompt_tokens, res.id = answer.prompt_tokens, answer.id
                        res.e2e = took
                except (gevent.GreenletExit, gevent.Timeout, KeyboardInterrupt) as e:
                    abort(res, e)
                    raise
                except ProtocolError as e:
                    fail(res, PROTOCOL, "malformed answer", f"malformed answer: {e}")
                except Exception as e:  # anything else must still be a counted failure
                    fail(res, CLIENT, type(e).__name__, f"{type(e).__name__}: {e}")
                finally:
                    meta = r.request_meta
                    meta["response_time"] = on_locust_grid(took)
                    meta["response_length"] = items
                    if res.aborted:
                        pass  # cut off by the client: neither a success nor a failure
                    elif res.error is not None:
                        r.failure(plugin.redact(res.error, llm.api_key))
                    else:
                        r.success()
        return res
