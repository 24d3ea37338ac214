"""Pooling requests (embeddings, rerank): request bodies, answer checks, the words for failures.

Pure: no Locust, no sockets. The shapes are vLLM's: ``/v1/embeddings`` answers
``{"id", "object": "list", "created", "model", "data": [{"index", "object": "embedding",
"embedding"}], "usage": {"prompt_tokens", "total_tokens", ...}}`` and ``/v1/rerank``
answers ``{"id", "model", "usage": {"prompt_tokens", "total_tokens"}, "results": [{"index",
"document": {"text"}, "relevance_score"}]}``. An answer is checked as far as the
measurement depends on it: one vector per input (else the latency was not for the work asked),
results that index the documents sent, and a usage count for the input-token rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from locust_llm.protocol import ProtocolError

__all__ = [
    "EMBEDDINGS_PATH",
    "RERANK_PATH",
    "POOLING_PATHS",
    "PoolingInputError",
    "PoolingAnswer",
    "embeddings_body",
    "rerank_body",
    "parse_embeddings",
    "parse_rerank",
    "parse_answer",
    "not_served",
    "route_missing",
]

EMBEDDINGS_PATH = "/v1/embeddings"
RERANK_PATH = "/v1/rerank"
POOLING_PATHS = (EMBEDDINGS_PATH, RERANK_PATH)


class PoolingInputError(ValueError):
    """The locustfile asked for a request that cannot be sent; the message says what to fix."""


@dataclass(frozen=True)
class PoolingAnswer:
    """What a valid answer tells the measurement: tokens the server read, items it returned."""

    prompt_tokens: int | None
    items: int
    id: str | None = None


def _texts(value: Any, what: str, call: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise PoolingInputError(
            f"{call}: {what} must be a non-empty list of strings, got {value!r:.60}"
        )
    bad = [i for i, v in enumerate(value) if not isinstance(v, str) or not v]
    if bad:
        raise PoolingInputError(
            f"{call}: {what}[{bad[0]}] is {value[bad[0]]!r:.40}: every item must be a "
            "non-empty string"
        )
    return list(value)


def embeddings_body(model: str, inputs: Any, **extra: Any) -> dict[str, Any]:
    """``{"model", "input": [...]}``; ``extra`` (dimensions, encoding_format...) goes in as is."""
    texts = _texts(inputs, "inputs", "embed()")
    return {"model": model, "input": texts, **extra}


def rerank_body(
    model: str, query: Any, documents: Any, top_n: int | None = None, **extra: Any
) -> dict[str, Any]:
    """``{"model", "query", "documents": [...]}`` plus ``top_n`` when given (vLLM: 0 = all)."""
    if not isinstance(query, str) or not query:
        raise PoolingInputError(f"rerank(): query must be a non-empty string, got {query!r:.60}")
    docs = _texts(documents, "documents", "rerank()")
    if top_n is not None and (not isinstance(top_n, int) or top_n < 0):
        raise PoolingInputError(f"rerank(): top_n must be an integer >= 0, got {top_n!r}")
    body: dict[str, Any] = {"model": model, "query": query, "documents": docs, **extra}
    if top_n is not None:
        body["top_n"] = top_n
    return body


def _load(body: bytes, path: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ProtocolError(
            f"{path} answered 200 with a body that is not JSON ({body[:60]!r})"
        ) from None
    if not isinstance(doc, dict):
        raise ProtocolError(f"{path} answered 200 with JSON that is not an object")
    return doc


def _prompt_tokens(doc: dict[str, Any]) -> int | None:
    usage = doc.get("usage")
    if not isinstance(usage, dict):
        return None
    n = usage.get("prompt_tokens", usage.get("total_tokens"))
    return n if isinstance(n, int) and n >= 0 else None


def parse_embeddings(body: bytes, n_inputs: int) -> PoolingAnswer:
    """Check an ``/v1/embeddings`` answer: one vector per input, indices 0..n-1."""
    doc = _load(body, EMBEDDINGS_PATH)
    data = doc.get("data")
    if not isinstance(data, list):
        raise ProtocolError(f"{EMBEDDINGS_PATH} answer has no data list: not an embeddings answer")
    if len(data) != n_inputs:
        raise ProtocolError(
            f"{EMBEDDINGS_PATH} answered {len(data)} embeddings for {n_inputs} inputs"
        )
    seen = set()
    for d in data:
        if not isinstance(d, dict) or not isinstance(d.get("embedding"), (list, str)):
            raise ProtocolError(f"{EMBEDDINGS_PATH} answer item without an embedding: {d!r:.80}")
        seen.add(d.get("index"))
    if seen != set(range(n_inputs)):
        raise ProtocolError(f"{EMBEDDINGS_PATH} answer indices are not 0..{n_inputs - 1}")
    return PoolingAnswer(_prompt_tokens(doc), n_inputs, doc.get("id"))


def parse_rerank(body: bytes, n_documents: int, top_n: int | None = None) -> PoolingAnswer:
    """Check a ``/v1/rerank`` answer: results indexing the documents sent, each with a score.
    ``items`` counts the documents scored (all of them: ``top_n`` only trims the answer)."""
    doc = _load(body, RERANK_PATH)
    results = doc.get("results")
    if not isinstance(results, list):
        raise ProtocolError(f"{RERANK_PATH} answer has no results list: not a rerank answer")
    want = min(top_n, n_documents) if top_n else n_documents
    if len(results) != want:
        raise ProtocolError(f"{RERANK_PATH} answered {len(results)} results, expected {want}")
    for r in results:
        if (
            not isinstance(r, dict)
            or not isinstance(r.get("relevance_score"), (int, float))
            or not isinstance(r.get("index"), int)
            or not 0 <= r["index"] < n_documents
        ):
            raise ProtocolError(f"{RERANK_PATH} answer result is malformed: {r!r:.80}")
    return PoolingAnswer(_prompt_tokens(doc), n_documents, doc.get("id"))


def parse_answer(path: str, body: bytes, items: int, top_n: int | None = None) -> PoolingAnswer:
    """The parser for ``path`` (one of :data:`POOLING_PATHS`)."""
    if path == RERANK_PATH:
        return parse_rerank(body, items, top_n)
    return parse_embeddings(body, items)


def not_served(path: str, host: str | None = None) -> str:
    """A 404 on a pooling path: the server has no such route (vLLM registers the pooling
    routes only for a model run as a pooling model), not a failure under load."""
    at = f" at {host.rstrip('/')}" if host else ""
    how = "--convert embed" if path == EMBEDDINGS_PATH else "--convert classify for a reranker"
    return (
        f"the server{at} does not serve {path} (HTTP 404): start it with a pooling model "
        f"(vllm serve MODEL --runner pooling, {how}), or point --host at one"
    )


def route_missing(status: int, body: bytes) -> bool:
    """vLLM's (FastAPI's) answer for a path it has no route for: 404 ``{"detail": "Not
    Found"}``, unlike its OpenAI error object for an unknown model (also 404)."""
    if status != 404:
        return False
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return True  # a proxy's HTML 404 page: no such location either
    return not (isinstance(doc, dict) and "error" in doc)
