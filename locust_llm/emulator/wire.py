"""vLLM's OpenAI wire format, byte-exact, built from templates so a token costs ~100 ns.

Streaming chunks follow vLLM 0.32 (`model_dump_json(exclude_unset=True)` of its pydantic
models): chat starts with a role chunk ``delta: {"role": "assistant", "content": ""}``, then one
chunk per token with ``delta.content``; the last token chunk carries ``finish_reason`` and
``stop_reason``; with ``stream_options.include_usage`` a ``"choices": []`` chunk with ``usage``
follows; ``continuous_usage_stats`` adds ``usage`` to every chunk; then ``data: [DONE]``.
Completions chunks are ``object: "text_completion"`` with ``choices[].text`` and no role chunk.
Every SSE event is ``data: <json>\\n\\n``.
"""

from __future__ import annotations

import orjson

DONE = b"data: [DONE]\n\n"
VLLM_VERSION = "0.32.0"  # the vLLM whose answers tests/fixtures/vllm/ recorded
SYSTEM_FINGERPRINT = f"vllm-{VLLM_VERSION}-emulator"

UNAUTHORIZED = b'{"error":"Unauthorized"}'  # vLLM's API-key middleware, not an OpenAI error
ERROR_TYPES = {
    400: "BadRequestError",
    401: "Unauthorized",
    404: "NotFoundError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


def error_body(code: int, message: str, param: str | None = None) -> bytes:
    """vLLM's error JSON: ``{"error": {"message", "type", "param", "code"}}``."""
    err = {"message": message, "type": ERROR_TYPES.get(code, "Error"), "param": param, "code": code}
    return orjson.dumps({"error": err})


def error_event(code: int, message: str) -> bytes:
    """A mid-stream error as vLLM sends it inside a 200 stream."""
    return b"data: " + error_body(code, message) + b"\n\n"


def _usage(prompt: int, completion: int, details: bytes = b"") -> bytes:
    return b'{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d%s}' % (
        prompt,
        prompt + completion,
        completion,
        b',"prompt_tokens_details":' + details if details else b"",
    )


class Cache:
    """One request's prefix-cache figures, for ``usage.prompt_tokens_details``.

    vLLM 0.32 sends the details only with ``--enable-prompt-tokens-details``, and then always
    (``cached_tokens`` is 0 without a hit). Chat reports ``created_cache_tokens`` too;
    completions only ``cached_tokens``. Streams drop null fields (``exclude_none``), full
    responses keep them.
    """

    __slots__ = ("cached", "created")

    def __init__(self, cached: int, created: int) -> None:
        self.cached, self.created = cached, created

    def stream_details(self, chat: bool) -> bytes:
        if chat:
            return b'{"cached_tokens":%d,"created_cache_tokens":%d}' % (self.cached, self.created)
        return b'{"cached_tokens":%d}' % self.cached

    def details(self, chat: bool) -> dict:
        return {
            "cached_tokens": self.cached,
            "created_cache_tokens": self.created if chat else None,
            "multimodal_tokens": None,
        }


class StreamEncoder:
    """Builds the SSE bytes of one streamed request (chat or completions)."""

    def __init__(
        self,
        chat: bool,
        rid: str,
        created: int,
        model: str,
        prompt_tokens: int,
        include_usage: bool = False,
        continuous_usage: bool = False,
    ) -> None:
        self.chat = chat
        self.prompt_tokens = prompt_tokens
        self.include_usage = include_usage
        self.continuous = continuous_usage and include_usage
        head = orjson.dumps(
            {
                "id": rid,
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": created,
                "model": model,
            }
        )[:-1]  # drop the closing brace: choices etc. follow
        self.head = b"data: " + head
        if chat:
            self.pre = self.head + b',"choices":[{"index":0,"delta":{"content":"'
            self.mid = b'"},"logprobs":null,"finish_reason":'
        else:
            self.pre = self.head + b',"choices":[{"index":0,"text":"'
            self.mid = b'","logprobs":null,"finish_reason":'
        # what closes a choice: vLLM 0.32 writes token_ids (and, for completions,
        # prompt_token_ids) as null on every chunk, stop_reason with finish_reason in chat
        self.ids = b',"token_ids":null' if chat else b',"prompt_token_ids":null,"token_ids":null'
        open_sr = b"" if chat else b',"stop_reason":null'
        # the separator between two consecutive plain token chunks
        self.sep = self.mid + b"null" + open_sr + self.ids + b"}]}\n\n" + self.pre

    def role_chunk(self) -> bytes:
        """Chat only: the first chunk, ``delta: {"role": "assistant", "content": ""}``."""
        tail = b',"usage":' + _usage(self.prompt_tokens, 0) if self.continuous else b""
        return (
            self.head + b',"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
            b'"logprobs":null,"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null'
            + tail
            + b"}\n\n"
        )

    def tokens(
        self,
        pieces: list[bytes],
        first_index: int,
        finish: str | None = None,
        stop_reason: str | None = None,
    ) -> bytes:
        """Chunks for ``pieces`` (escaped token texts, the first being token ``first_index``).

        ``finish`` goes on the last piece's chunk (``stop`` / ``length``).
        """
        if not pieces:
            return b""
        if self.continuous:
            return b"".join(
                self._one(p, first_index + i, finish if i == len(pieces) - 1 else None, stop_reason)
                for i, p in enumerate(pieces)
            )
        if finish is None:
            return self.pre + self.sep.join(pieces) + self.mid + b"null" + self._close(None, None)
        body = self.pre + self.sep.join(pieces[:-1]) + self.sep if len(pieces) > 1 else self.pre
        return (
            body
            + pieces[-1]
            + self.mid
            + b'"'
            + finish.encode()
            + b'"'
            + self._close(finish, stop_reason)
        )

    def _close(self, finish: str | None, stop_reason: str | None, usage: bytes = b"") -> bytes:
        sr = orjson.dumps(stop_reason) if stop_reason is not None else b"null"
        if self.chat and finish is None:
            choice_end = self.ids + b"}]"
        else:
            choice_end = b',"stop_reason":' + sr + self.ids + b"}]"
        return choice_end + (b',"usage":' + usage if usage else b"") + b"}\n\n"

    def _one(self, piece: bytes, index: int, finish: str | None, stop_reason: str | None) -> bytes:
        fr = b'"' + finish.encode() + b'"' if finish else b"null"
        usage = _usage(self.prompt_tokens, index + 1)
        return self.pre + piece + self.mid + fr + self._close(finish, stop_reason, usage)

    def usage_chunk(self, completion_tokens: int, cache: Cache | None = None) -> bytes:
        """The final ``"choices": []`` chunk carrying usage (include_usage only); ``cache``
        adds ``prompt_tokens_details`` (``--enable-prompt-tokens-details``)."""
        details = cache.stream_details(self.chat) if cache is not None else b""
        return (
            self.head
            + b',"choices":[],"usage":'
            + _usage(self.prompt_tokens, completion_tokens, details)
            + b',"system_fingerprint":'
            + orjson.dumps(SYSTEM_FINGERPRINT)
            + b"}\n\n"
        )


def chat_response(
    rid: str,
    created: int,
    model: str,
    text: str,
    finish: str,
    stop_reason: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    cache: Cache | None = None,
) -> bytes:
    """Non-streaming ``chat.completion`` body as vLLM returns it."""
    return orjson.dumps(
        {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": text,
                        "refusal": None,
                        "annotations": None,
                        "audio": None,
                        "function_call": None,
                        "reasoning": None,
                    },
                    "logprobs": None,
                    "finish_reason": finish,
                    "stop_reason": stop_reason,
                    "token_ids": None,
                    "routed_experts": None,
                }
            ],
            "service_tier": None,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "usage": _usage_dict(prompt_tokens, completion_tokens, cache and cache.details(True)),
            "prompt_logprobs": None,
            "prompt_token_ids": None,
            "prompt_text": None,
            "kv_transfer_params": None,
            "ec_transfer_params": None,
            "metrics": None,
        }
    )


def completion_response(
    rid: str,
    created: int,
    model: str,
    text: str,
    finish: str,
    stop_reason: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    cache: Cache | None = None,
) -> bytes:
    """Non-streaming ``text_completion`` body as vLLM returns it."""
    return orjson.dumps(
        {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "text": text,
                    "logprobs": None,
                    "finish_reason": finish,
                    "stop_reason": stop_reason,
                    "prompt_logprobs": None,
                    "prompt_token_ids": None,
                    "token_ids": None,
                    "routed_experts": None,
                }
            ],
            "service_tier": None,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "usage": _usage_dict(prompt_tokens, completion_tokens, cache and cache.details(False)),
            "kv_transfer_params": None,
            "ec_transfer_params": None,
            "metrics": None,
        }
    )


def _usage_dict(prompt: int, completion: int, details: dict | None = None) -> dict:
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": details,
        "completion_tokens_details": None,
    }
