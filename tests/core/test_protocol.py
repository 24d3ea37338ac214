"""protocol: request bodies, vLLM 0.33 chunk shapes, error bodies."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from locust_llm.protocol import (
    CHAT_PATH,
    COMPLETIONS_PATH,
    DONE,
    Chunk,
    ProtocolError,
    chat_body,
    completions_body,
    error_message,
    parse_chunk,
)

# -- request bodies ------------------------------------------------------------------------


def test_paths():
    assert CHAT_PATH == "/v1/chat/completions"
    assert COMPLETIONS_PATH == "/v1/completions"


def test_chat_body_defaults_and_options():
    msgs = [{"role": "user", "content": "hi"}]
    assert chat_body("m", msgs) == {
        "model": "m",
        "messages": msgs,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    b = chat_body("m", msgs, 64, ignore_eos=True, temperature=0.0)
    assert b["max_tokens"] == 64 and b["ignore_eos"] is True and b["temperature"] == 0.0
    assert "stream_options" not in chat_body("m", msgs, stream=False)
    assert "stream_options" not in chat_body("m", msgs, include_usage=False)
    assert "ignore_eos" not in chat_body("m", msgs)
    # extra is merged last: the user can override anything
    b = chat_body("m", msgs, 8, stream_options={"include_usage": False}, stream=True)
    assert b["stream_options"] == {"include_usage": False}
    orjson.dumps(b)  # serialisable


def test_completions_body():
    b = completions_body("m", "Once upon", 16)
    assert b == {
        "model": "m",
        "prompt": "Once upon",
        "stream": True,
        "max_tokens": 16,
        "stream_options": {"include_usage": True},
    }
    assert completions_body("m", [1, 2, 3], ignore_eos=True)["prompt"] == [1, 2, 3]
    assert completions_body("m", "x", ignore_eos=True)["ignore_eos"] is True
    assert "max_tokens" not in completions_body("m", "x")
    assert "stream_options" not in completions_body("m", "x", stream=False)
    assert completions_body("m", "x", seed=3, stream=True)["seed"] == 3


# -- vLLM 0.33 stream chunks, byte for byte ------------------------------------------------

ID = "chatcmpl-5f1c2b9a0c4e4b8f"
HEAD = f'"id":"{ID}","object":"chat.completion.chunk","created":1763790000,"model":"m"'

ROLE = (
    "{" + HEAD + ',"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
    '"logprobs":null,"finish_reason":null}]}'
).encode()
CONTENT = (
    "{" + HEAD + ',"choices":[{"index":0,"delta":{"content":" Hello"},'
    '"logprobs":null,"finish_reason":null}]}'
).encode()
REASONING = (
    "{" + HEAD + ',"choices":[{"index":0,"delta":{"reasoning_content":"Let me think"},'
    '"logprobs":null,"finish_reason":null}]}'
).encode()
REASONING_NEW = (
    "{" + HEAD + ',"choices":[{"index":0,"delta":{"reasoning":"hmm"},'
    '"logprobs":null,"finish_reason":null}]}'
).encode()
TOOL = (
    "{" + HEAD + ',"choices":[{"index":0,"delta":{"tool_calls":[{"id":"chatcmpl-tool-1",'
    '"type":"function","index":0,"function":{"name":"get_weather","arguments":""}}]},'
    '"logprobs":null,"finish_reason":null}]}'
).encode()
FINISH = (
    "{" + HEAD + ',"choices":[{"index":0,"delta":{"content":""},"logprobs":null,'
    '"finish_reason":"length","stop_reason":null}]}'
).encode()
FINISH_WITH_TEXT = (
    "{" + HEAD + ',"choices":[{"index":0,"delta":{"content":"."},"logprobs":null,'
    '"finish_reason":"stop","stop_reason":null}]}'
).encode()
USAGE = (
    "{" + HEAD + ',"choices":[],"usage":{"prompt_tokens":12,"total_tokens":76,'
    '"completion_tokens":64}}'
).encode()
CMPL = (
    b'{"id":"cmpl-9","object":"text_completion","created":1763790000,"model":"m",'
    b'"choices":[{"index":0,"text":" world","logprobs":null,"finish_reason":null,'
    b'"stop_reason":null}]}'
)
CMPL_EMPTY = (
    b'{"id":"cmpl-9","object":"text_completion","created":1763790000,"model":"m",'
    b'"choices":[{"index":0,"text":"","logprobs":null,"finish_reason":"stop",'
    b'"stop_reason":null}]}'
)
CMPL_USAGE = (
    b'{"id":"cmpl-9","object":"text_completion","created":1763790000,"model":"m",'
    b'"choices":[],"usage":{"prompt_tokens":5,"total_tokens":7,"completion_tokens":2}}'
)


@pytest.mark.parametrize(
    "payload, is_token, has_content, text, finish, usage, cid",
    [
        (ROLE, True, False, "", None, None, ID),
        (CONTENT, True, True, " Hello", None, None, ID),
        (REASONING, True, True, "", None, None, ID),
        (REASONING_NEW, True, True, "", None, None, ID),
        (TOOL, True, True, "", None, None, ID),
        (FINISH, True, False, "", "length", None, ID),
        (FINISH_WITH_TEXT, True, True, ".", "stop", None, ID),
        (
            USAGE,
            False,
            False,
            "",
            None,
            {"prompt_tokens": 12, "total_tokens": 76, "completion_tokens": 64},
            ID,
        ),
        (CMPL, True, True, " world", None, None, "cmpl-9"),
        (CMPL_EMPTY, True, False, "", "stop", None, "cmpl-9"),
        (
            CMPL_USAGE,
            False,
            False,
            "",
            None,
            {"prompt_tokens": 5, "total_tokens": 7, "completion_tokens": 2},
            "cmpl-9",
        ),
    ],
)
def test_vllm_chunk_shapes(payload, is_token, has_content, text, finish, usage, cid):
    c = parse_chunk(payload)
    assert isinstance(c, Chunk)
    assert c.is_token is is_token
    assert c.has_content is has_content
    assert c.text == text
    assert c.finish_reason == finish
    assert c.usage == usage
    assert c.error is None
    assert c.id == cid


def test_done():
    c = parse_chunk(b"[DONE]")
    assert c is DONE
    assert not c.is_token and not c.has_content and c.error is None and c.usage is None


def test_whole_vllm_chat_stream_counts():
    payloads = [ROLE, CONTENT, CONTENT, FINISH, USAGE, b"[DONE]"]
    chunks = [parse_chunk(p) for p in payloads]
    assert sum(c.is_token for c in chunks) == 4  # role + 2 content + finish
    first_content = next(i for i, c in enumerate(chunks) if c.has_content)
    assert first_content == 1  # ttft_content is the second chunk, ttft the first
    assert "".join(c.text for c in chunks) == " Hello Hello"
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["length"]
    assert chunks[4].usage["completion_tokens"] == 64


# -- errors in a stream --------------------------------------------------------------------


def test_mid_stream_error_nested():
    c = parse_chunk(
        b'{"error":{"message":"The decoder prompt is too long","type":"BadRequestError",'
        b'"param":null,"code":400}}'
    )
    assert not c.is_token
    assert c.error == "The decoder prompt is too long (type=BadRequestError, code=400)"


def test_mid_stream_error_flat():
    c = parse_chunk(
        b'{"object":"error","message":"Engine died","type":"InternalServerError",'
        b'"param":null,"code":500}'
    )
    assert c.error == "Engine died"
    assert not c.is_token


def test_mid_stream_error_minimal_forms():
    assert parse_chunk(b'{"error":"boom"}').error == "boom"
    assert parse_chunk(b'{"error":{}}').error == "error"
    assert parse_chunk(b'{"error":{"type":"X"}}').error == "X"
    assert parse_chunk(b'{"object":"error"}').error == "error"


def test_error_message_text_is_one_line():
    # pydantic validation errors from vLLM carry newlines
    msg = "1 validation error for ChatCompletionRequest\nmax_tokens\n  Input should be > 0"
    c = parse_chunk(orjson.dumps({"error": {"message": msg, "type": "BadRequestError"}}))
    assert "\n" not in c.error and "max_tokens" in c.error
    e = error_message(400, orjson.dumps({"object": "error", "message": msg}))
    assert "\n" not in e and "Input should be > 0" in e


@pytest.mark.parametrize(
    "payload",
    [b"", b"{", b'{"choices": [', b"data: {}", b"\xff\xfe", b"[DONE] ", b"nul", b"{'a': 1}"],
)
def test_invalid_json_is_protocol_error(payload):
    with pytest.raises(ProtocolError, match="invalid JSON"):
        parse_chunk(payload)


@pytest.mark.parametrize("payload", [b"[]", b"1", b'"text"', b"null", b"[1, 2]"])
def test_non_object_is_protocol_error(payload):
    with pytest.raises(ProtocolError, match="not a JSON object"):
        parse_chunk(payload)


@pytest.mark.parametrize(
    "payload", [b"{}", b'{"id":"x","object":"chat.completion.chunk"}', b'{"output":"hi"}']
)
def test_no_choices_is_not_openai_compatible(payload):
    with pytest.raises(ProtocolError, match="not an OpenAI-compatible"):
        parse_chunk(payload)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"choices": 5}',
        b'{"choices": true}',
        b'{"choices": {"a": 1}}',
        b'{"choices": "abc"}',
        b'{"choices": [5]}',
        b'{"choices": [null]}',
        b'{"choices": [{"delta": "x"}]}',
        b'{"choices": [{"delta": {"content": 5}}]}',
        b'{"choices": [{"text": ["a"]}]}',
        b'{"choices": [], "usage": [1]}',
    ],
)
def test_malformed_choices_are_protocol_errors(payload):
    with pytest.raises(ProtocolError):
        parse_chunk(payload)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["choices", "delta", "text", "content", "usage", "error", "object", "id", "x"]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_json.map(orjson.dumps), st.binary(max_size=40)))
def test_parse_chunk_never_raises_anything_but_protocol_error(payload):
    try:
        c = parse_chunk(payload)
    except ProtocolError:
        return
    assert isinstance(c.text, str)
    assert c.usage is None or isinstance(c.usage, dict)
    assert c.error is None or isinstance(c.error, str)
    assert c.has_content <= c.is_token or c.error is not None


@pytest.mark.parametrize(
    "obj",
    [
        {"choices": [{"delta": {"content": ""}}]},
        {"choices": [{"delta": {"content": None}}], "usage": None},
        {"choices": [{"delta": {}}], "id": "x"},
        {"choices": [{"text": "a"}], "usage": None},
        {"choices": [{"text": None, "finish_reason": "stop"}]},
        {"choices": [{"delta": {"content": "a"}}, {"delta": {"content": "b"}}]},  # n > 1
    ],
)
def test_token_chunks_with_optional_fields(obj):
    c = parse_chunk(orjson.dumps(obj))
    assert c.is_token and c.error is None and isinstance(c.text, str)


# -- HTTP error bodies ---------------------------------------------------------------------


def _vllm(message: str, kind: str, code: int) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


@pytest.mark.parametrize(
    "status, body, expected",
    [
        (401, b'{"error":"Unauthorized"}', "HTTP 401: Unauthorized [check --llm-api-key"),
        (
            404,
            _vllm("The model `gpt-x` does not exist.", "NotFoundError", 404),
            "HTTP 404: The model `gpt-x` does not exist. (type=NotFoundError, code=404) [wrong",
        ),
        (
            400,
            _vllm("max_tokens must be at least 1, got 0.", "BadRequestError", 400),
            "HTTP 400: max_tokens must be at least 1, got 0. (type=BadRequestError, code=400)",
        ),
        (
            429,
            _vllm("Too many requests", "RateLimitError", 429),
            "HTTP 429: Too many requests (type=RateLimitError, code=429) [server is rate",
        ),
        (
            500,
            _vllm("EngineCore encountered an issue", "InternalServerError", 500),
            "HTTP 500: EngineCore encountered an issue (type=InternalServerError, code=500)",
        ),
        (
            503,
            _vllm("The server is overloaded", "ServiceUnavailableError", 503),
            "HTTP 503: The server is overloaded (type=ServiceUnavailableError, code=503)",
        ),
        # the older flat form
        (
            404,
            b'{"object":"error","message":"The model `x` does not exist.",'
            b'"type":"NotFoundError","param":null,"code":404}',
            "HTTP 404: The model `x` does not exist. [wrong",
        ),
        (
            400,
            b'{"object":"error","message":"bad","type":"BadRequestError","code":400}',
            "HTTP 400: bad",
        ),
        (
            503,
            b'{"object":"error","message":"queue full","type":"ServiceUnavailable","code":503}',
            "HTTP 503: queue full",
        ),
        # HTML from a proxy
        (
            503,
            b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n"
            b"<body><center><h1>503</h1></center><hr><center>nginx</center></body></html>",
            "HTTP 503: non-JSON (HTML) error body",
        ),
        (429, b"  \n<!DOCTYPE html><html>slow down</html>", "HTTP 429: non-JSON (HTML)"),
        # nginx's own pages when the replica behind it died or stalled: about the replica
        (
            502,
            b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body></body></html>",
            "HTTP 502: Bad Gateway from a proxy: the server behind it closed the connection",
        ),
        (
            504,
            b"<html><title>504 Gateway Time-out</title></html>",
            "HTTP 504: Gateway Timeout from",
        ),
        # plain text and FastAPI's default shape
        (500, b"Internal Server Error", "HTTP 500: Internal Server Error"),
        (404, b'{"detail":"Not Found"}', 'HTTP 404: {"detail":"Not Found"}'),
        # empty bodies
        (500, b"", "HTTP 500: no body"),
        (503, None, "HTTP 503: no body"),
        (401, "", "HTTP 401: no body [check --llm-api-key"),
        (400, b"   ", "HTTP 400: no body"),
    ],
)
def test_error_message(status, body, expected):
    msg = error_message(status, body)
    assert msg.startswith(expected), msg
    assert "\n" not in msg and "\r" not in msg


def test_error_message_str_body_and_hints():
    assert error_message(404, '{"error":{"message":"nope"}}').startswith("HTTP 404: nope [")
    assert "[server is rate limiting]" in error_message(429, b"")
    assert error_message(500, b"").endswith("no body")  # no hint for 5xx
    assert "request too large" in error_message(413, b"")


def test_error_message_long_plain_body_is_shortened():
    msg = error_message(502, b"x" * 5000)
    assert len(msg) < 200 and msg.endswith("…")


@settings(max_examples=200, deadline=None)
@given(st.integers(100, 599), st.one_of(st.binary(max_size=60), _json.map(orjson.dumps)))
def test_error_message_never_raises_and_is_one_line(status, body):
    msg = error_message(status, body)
    assert msg.startswith(f"HTTP {status}: ")
    assert "\n" not in msg and "\r" not in msg
