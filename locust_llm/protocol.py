"""OpenAI-compatible request bodies and streamed-chunk decoding, as vLLM 0.33 speaks them.

Pure functions: no I/O, no Locust. The stream loop calls :func:`parse_chunk` once per SSE event,
so it does one ``orjson.loads`` and a handful of dict lookups, nothing more.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

__all__ = [
    "CHAT_PATH",
    "COMPLETIONS_PATH",
    "Chunk",
    "DONE",
    "ProtocolError",
    "chat_body",
    "completions_body",
    "error_message",
    "parse_chunk",
]

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
_DONE_PAYLOAD = b"[DONE]"


class ProtocolError(ValueError):
    """A chunk that is not what an OpenAI-compatible server sends (bad JSON, wrong shape)."""


class Chunk(NamedTuple):
    """One decoded ``data:`` event.

    ``is_token`` follows vLLM's benchmark: any chunk with non-empty ``choices`` counts as a
    token chunk (the role-only first chat chunk included). ``has_content`` marks the first
    chunk that carries text, reasoning or a tool call (guidellm's TTFT); ``answer`` one that
    carries text or a tool call but not only reasoning (the first non-reasoning output).
    ``reasoning`` is the chunk's reasoning text, counted with ``text`` when a tokenizer must
    count the output because the server sent no usage.
    """

    is_token: bool
    has_content: bool
    text: str
    finish_reason: str | None
    usage: dict | None
    error: str | None
    id: str | None
    answer: bool = False
    reasoning: str = ""


DONE = Chunk(False, False, "", None, None, None, None)


def _body(
    model: str,
    key: str,
    payload: Any,
    max_tokens: int | None,
    stream: bool,
    include_usage: bool,
    ignore_eos: bool,
    extra: dict[str, Any],
    continuous_usage: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, key: payload, "stream": stream}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stream and include_usage:
        body["stream_options"] = {"include_usage": True}
        if continuous_usage:  # vLLM: usage (cumulative) in every chunk: tokens per chunk
            body["stream_options"]["continuous_usage_stats"] = True
    if ignore_eos:
        body["ignore_eos"] = True  # vLLM extension; other servers ignore unknown fields
    body.update(extra)  # last, so users can override anything
    return body


def chat_body(
    model: str,
    messages: list[dict[str, Any]],
    max_tokens: int | None = None,
    *,
    stream: bool = True,
    include_usage: bool = True,
    continuous_usage: bool = False,
    ignore_eos: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """Body for ``/v1/chat/completions``."""
    return _body(
        model, "messages", messages, max_tokens, stream, include_usage, ignore_eos, extra,
        continuous_usage,
    )  # fmt: skip


def completions_body(
    model: str,
    prompt: str | list[int],
    max_tokens: int | None = None,
    *,
    stream: bool = True,
    include_usage: bool = True,
    continuous_usage: bool = False,
    ignore_eos: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """Body for ``/v1/completions``."""
    return _body(
        model, "prompt", prompt, max_tokens, stream, include_usage, ignore_eos, extra,
        continuous_usage,
    )  # fmt: skip


def _error_text(obj: Any) -> str | None:
    """vLLM's ``{"error": {...}}``, the older flat ``{"object": "error", ...}``, or a string.

    Always one line: vLLM's validation messages span several lines, Locust's failures table
    and the JSONL records want one.
    """
    text = _error_text_raw(obj)
    if text is not None and ("\n" in text or "\r" in text):
        text = " ".join(text.split())
    return text


def _error_text_raw(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    err = obj.get("error")
    if err is not None:
        if isinstance(err, dict):
            msg = err.get("message") or err.get("type") or "error"
            code = err.get("code")
            kind = err.get("type")
            parts = [str(msg)]
            if kind and kind != msg:
                parts.append(f"type={kind}")
            if code not in (None, ""):
                parts.append(f"code={code}")
            return " ".join(parts) if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"
        return str(err)
    if obj.get("object") == "error":
        return str(obj.get("message") or obj.get("type") or "error")
    return None


def parse_chunk(payload: bytes) -> Chunk:
    """Decode one SSE ``data`` payload. ``[DONE]`` returns :data:`DONE`.

    Raises :class:`ProtocolError` for invalid JSON or a JSON value that is neither a chunk
    nor an error: the caller turns that into a failed request with the message.
    """
    if payload == _DONE_PAYLOAD:
        return DONE
    try:
        obj = _loads(payload)
    except orjson.JSONDecodeError as e:
        raise ProtocolError(f"invalid JSON in stream chunk: {_preview(payload)}") from e
    if type(obj) is not dict:
        raise ProtocolError(f"stream chunk is not a JSON object: {_preview(payload)}")
    choices = obj.get("choices")
    if choices is None:
        err = _error_text(obj)
        if err is not None:
            return Chunk(False, False, "", None, None, err, obj.get("id"))
        raise ProtocolError(
            f"stream chunk has no 'choices' (not an OpenAI-compatible stream?): {_preview(payload)}"
        )
    usage = obj.get("usage")
    if usage is not None and type(usage) is not dict:
        raise ProtocolError(f"malformed 'usage' in stream chunk: {_preview(payload)}")
    if type(choices) is not list:
        raise ProtocolError(f"malformed 'choices' in stream chunk: {_preview(payload)}")
    if not choices:
        return Chunk(False, False, "", None, usage, None, obj.get("id"))
    choice = choices[0]
    if type(choice) is not dict:
        raise ProtocolError(f"malformed 'choices' in stream chunk: {_preview(payload)}")
    delta = choice.get("delta")
    if delta is not None:  # chat
        if type(delta) is not dict:
            raise ProtocolError(f"malformed 'choices' in stream chunk: {_preview(payload)}")
        text = delta.get("content") or ""
        reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
        answer = True if text else bool(delta.get("tool_calls"))
        has = answer or bool(reasoning)
    else:  # completions
        text = choice.get("text") or ""
        reasoning = ""
        has = answer = bool(text)
    if type(text) is not str or type(reasoning) is not str:
        raise ProtocolError(f"non-string text in stream chunk: {_preview(payload)}")
    # tuple.__new__ rather than Chunk(...): the named tuple's __new__ is a Python-level
    # function, and this runs once per token
    return _new_tuple(
        Chunk,
        (
            True,
            has,
            text,
            choice.get("finish_reason"),
            usage,
            None,
            obj.get("id"),
            answer,
            reasoning,
        ),
    )


_loads = orjson.loads
_new_tuple = tuple.__new__


def error_message(status: int, body: bytes | str | None) -> str:
    """One line for Locust's failures table: the status and the server's own words."""
    if isinstance(body, str):
        body = body.encode("utf-8", "replace")
    text = None
    if body:
        try:
            text = _error_text(orjson.loads(body))
        except orjson.JSONDecodeError:
            text = None
        if text is None:
            stripped = body.strip()
            if stripped[:1] == b"<" and status in _GATEWAY:
                text = _GATEWAY[status]
            elif stripped[:1] == b"<":
                text = "non-JSON (HTML) error body; is this an OpenAI-compatible endpoint?"
            else:
                text = _preview(stripped)
    hint = _HINTS.get(status, "")
    return f"HTTP {status}: {text or 'no body'}{hint}"


# a gateway's own HTML page for these (nginx's, say) is about the server behind it
_GATEWAY = {
    502: "Bad Gateway from a proxy: the server behind it closed the connection or is down",
    504: "Gateway Timeout from a proxy: the server behind it did not answer in time",
}

_HINTS = {
    401: " [check --llm-api-key / OPENAI_API_KEY]",
    403: " [the API key is not allowed to use this endpoint]",
    404: " [wrong path or model name? see --llm-model and the server's /v1/models]",
    413: " [request too large for the server or proxy]",
    429: " [server is rate limiting]",
}


def _preview(payload: bytes, limit: int = 120) -> str:
    text = payload[:limit].decode("utf-8", "replace").replace("\n", "\\n").replace("\r", "\\r")
    return text + ("…" if len(payload) > limit else "")
