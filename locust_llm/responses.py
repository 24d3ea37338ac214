"""What a response means before its tokens do: an event stream or not, its body, an abort.

Shared by the streaming users and the pooling (embeddings, rerank) user, which read answers
differently but must classify a cut-off request and a non-stream body the same way.
"""

from __future__ import annotations

from typing import Any

import gevent

from locust_llm.errors import ABORTED, CALLER_TIMEOUT, fail
from locust_llm.metrics.record import LLMResult

__all__ = [
    "ABORTED_PREFIX",
    "NOT_STREAMED",
    "abort",
    "response_body",
    "is_event_stream",
    "not_a_stream",
]

ABORTED_PREFIX = "aborted: "  # kept in the message for readers; the kind decides, not the text

# TTFT and ITL only exist for streamed responses; a locustfile that turns streaming off gets
# this, not a request whose JSON answer would be blamed on the server
NOT_STREAMED = (
    "stream={!r} in the request body: locust-llm measures streamed responses only "
    "(TTFT/ITL need them); leave stream out of chat()/complete() (or send stream=True)"
)


def abort(res: LLMResult, e: BaseException) -> None:
    """Cut off by the client: a caller's timeout cancelled it, or the user was stopped."""
    if isinstance(e, gevent.Timeout):
        msg = f"{ABORTED_PREFIX}cancelled by a timeout around the request ({e})"
        fail(res, CALLER_TIMEOUT, "aborted: timeout around the request", msg)
    else:
        msg = f"{ABORTED_PREFIX}user stopped while the request was in flight"
        fail(res, ABORTED, "aborted: user stopped", msg)


def response_body(r: Any) -> bytes:
    try:
        content = r.content
    except Exception:
        return b""
    return content if isinstance(content, bytes) else (content or "").encode()


def is_event_stream(r: Any) -> bool:
    ctype = (r.headers.get("content-type") or "") if r.headers else ""
    return not ctype or ctype.startswith("text/event-stream")


def not_a_stream(r: Any) -> str:
    ctype = r.headers.get("content-type") or ""
    content = response_body(r)
    if ctype.startswith("application/json"):
        return (
            "HTTP 200 with a JSON body instead of an event stream: the server ignored "
            f"stream=true ({content[:80].decode('utf-8', 'replace')!r})"
        )
    return (
        f"HTTP 200 with Content-Type {ctype!r}, not text/event-stream: "
        "is this an OpenAI-compatible endpoint?"
    )
