"""The stream loop against scripted servers: metrics per vLLM's definitions, every failure counted."""

from __future__ import annotations

import time

import gevent
import orjson
import pytest
from locust.env import Environment
from locust.event import Events

from locust_llm import OpenAIChatUser, OpenAICompletionsUser
from tests.client.fakeserver import FakeServer, chunked, plain, sse

ROLE = b'{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}'


def tok(text: str, finish: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
        }
    )


USAGE = b'{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}'


class Chat(OpenAIChatUser):
    abstract = True
    network_timeout = 1.0


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.stop()


def user(url: str, cls=Chat):
    env = Environment(user_classes=[cls], events=Events(), host=url)
    env.create_local_runner()  # hooks Locust's stats to the request event
    u = type("U", (cls,), {"abstract": False, "host": url})(env)
    u.llm.model = "m"
    return env, u


def test_metrics_follow_vllm_definitions(server):
    # role chunk at 50 ms, tokens 20 ms apart, finish on the last, usage, [DONE]
    server.routes["/v1/chat/completions"] = chunked(
        [
            (0.05, b"data: " + ROLE + b"\n\n"),
            (0.02, b"data: " + tok("a") + b"\n\n"),
            (0.02, b"data: " + tok("b") + b"\n\n"),
            (0.02, b"data: " + tok("c", "length") + b"\n\n"),
            (0.0, b"data: " + USAGE + b"\n\n"),
            (0.0, b"data: [DONE]\n\n"),
        ]
    )
    env, u = user(server.url)
    r = u.chat("hi", max_tokens=3)
    assert r.error is None and r.ok
    assert r.id == "chatcmpl-1" and r.text == "abc" and r.finish_reason == "length"
    assert 45 <= r.ttft <= 120, r.ttft  # the role chunk counts, as in vLLM
    assert r.ttft_content > r.ttft + 10  # first content chunk, guidellm's definition
    assert len(r.itl) == 3 and all(12 <= g <= 60 for g in r.itl), r.itl
    assert r.output_tokens == 3 and r.prompt_tokens == 7 and r.token_chunks == 4
    assert r.e2e == pytest.approx(r.ttft + sum(r.itl), abs=0.01)
    assert r.tpot == pytest.approx((r.e2e - r.ttft) / 2)
    stats = env.stats
    assert stats.get("TTFT", "LLM").num_requests == 1
    # kernel stamps: the gap to the last token is out when that token was read together
    # with the usage chunk and [DONE] written after it (its stamp is theirs)
    assert stats.get("ITL", "LLM").num_requests == len(r.exact_itl()) >= 2
    row = stats.get("/v1/chat/completions", "POST")
    assert row.num_requests == 1 and row.num_failures == 0
    assert row.total_content_length == 3  # output tokens as the row's length
    # E2E as the row's response time, on Locust's rounding grid like its percentiles
    from locust.stats import bucket_response_time

    assert row.max_response_time == bucket_response_time(r.e2e)
    assert row.median_response_time == row.get_response_time_percentile(0.95)
    assert ("TTFT", "LLM") not in [(e.name, e.method) for e in [stats.total]]
    assert stats.total.num_requests == 1  # LLM rows stay out of Aggregated


def test_stream_ending_after_finish_without_done_is_complete(server):
    server.routes["/v1/chat/completions"] = chunked(sse(ROLE, tok("x", "stop")))
    _, u = user(server.url)
    r = u.chat("hi")
    # no usage: the chunks that carried text (the role chunk carries none)
    assert r.error is None and r.output_tokens == 1 and r.output_tokens_source == "chunks"


@pytest.mark.parametrize(
    ("script", "needle"),
    [
        (chunked(sse(ROLE, tok("x")), end=False), "truncated"),
        (chunked(sse(ROLE, tok("x"))), "truncated"),  # clean end, but no finish and no [DONE]
        (
            chunked(
                sse(
                    b'{"error":{"message":"boom","type":"InternalServerError","code":500}}',
                    b"[DONE]",
                )
            ),
            "mid-stream: boom",  # an error before any token chunk: failed, as in vLLM
        ),
        (chunked(sse(ROLE, b"{not json")), "invalid JSON"),
        (chunked(sse(b'{"hello":1}')), "not an OpenAI-compatible"),
        (
            plain(
                "401 Unauthorized",
                b'{"error":{"message":"invalid api key","type":"Unauthorized","code":401}}',
            ),
            "HTTP 401: invalid api key",
        ),
        (
            plain(
                "404 Not Found",
                b'{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError","code":404}',
            ),
            "HTTP 404: The model `x` does not exist.",
        ),
        (
            plain(
                "400 Bad Request",
                b'{"error":{"message":"too long","type":"BadRequestError","code":400}}',
            ),
            "HTTP 400: too long",
        ),
        (plain("429 Too Many Requests", b'{"error":{"message":"slow down"}}'), "HTTP 429"),
        (plain("500 Internal Server Error", b"oops"), "HTTP 500: oops"),
        (
            plain("503 Service Unavailable", b'{"error":{"message":"queue full"}}'),
            "HTTP 503: queue full",
        ),
        (plain("200 OK", b"<html>hello</html>", "text/html"), "not text/event-stream"),
        (plain("200 OK", b'{"id":"x","choices":[]}'), "ignored stream=true"),
        (chunked(sse(b"[DONE]")), "without any token"),
        (
            [
                (
                    0.0,
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
                ),
                (3.0, b""),
            ],
            "read timeout",
        ),
        ("reset", ""),
    ],
)
def test_failures_are_counted_with_clear_messages(server, script, needle):
    server.routes["/v1/chat/completions"] = script
    env, u = user(server.url)
    r = u.chat("hi")
    assert r.error is not None and needle in r.error, r.error
    row = env.stats.get("/v1/chat/completions", "POST")
    assert row.num_failures == 1
    assert len(env.stats.errors) == 1
    assert env.stats.get("TTFT", "LLM").num_requests == 0  # failed requests stay out of LLM rows
    assert env.llm.collector.merged().failed == 1


def test_connection_refused_is_a_clear_failure():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env, u = user(f"http://127.0.0.1:{port}")
    r = u.chat("hi")
    assert "connection refused" in r.error and "is the server running" in r.error
    assert env.stats.get("/v1/chat/completions", "POST").num_failures == 1


def test_greenlet_exit_counts_as_aborted(server):
    import gevent

    server.routes["/v1/chat/completions"] = chunked(sse(ROLE) + [(5.0, b"data: [DONE]\n\n")])
    env, u = user(server.url)
    u.network_timeout = 10
    g = gevent.spawn(u.chat, "hi")
    gevent.sleep(0.3)
    g.kill(gevent.GreenletExit)
    # not a server failure: Locust's table leaves it out, as the LLM summary's "failed" does
    row = env.stats.get("/v1/chat/completions", "POST")
    assert row.num_failures == 0 and row.num_requests == 0
    w = env.llm.collector.merged()
    assert w.aborted == 1 and w.failed == 0


def test_a_user_stopped_while_yielding_to_other_readers_keeps_its_complete_request(
    server, monkeypatch
):
    """A finished stream yields once to other ready sockets before its accounting; a stop
    landing in that yield still records the complete request, then stops the user."""
    import gevent

    from locust_llm import accounting

    server.routes["/v1/chat/completions"] = chunked(sse(ROLE, tok("a", "stop"), b"[DONE]"))
    env, u = user(server.url)
    seen = []
    env.events.llm_request.add_listener(lambda result, **_: seen.append(result))
    monkeypatch.setattr(accounting, "_pending", lambda: 1)

    def stopped(_s):
        raise gevent.GreenletExit

    monkeypatch.setattr(accounting.gevent, "sleep", stopped)
    with pytest.raises(gevent.GreenletExit):
        u.chat("hi")
    assert len(seen) == 1 and seen[0].ok and not seen[0].aborted and seen[0].text == "a"
    assert env.llm.collector.merged().completed == 1


def test_completions_text_and_records(server, tmp_path):
    def c(text, finish=None):
        return orjson.dumps(
            {
                "id": "cmpl-9",
                "object": "text_completion",
                "choices": [{"index": 0, "text": text, "finish_reason": finish}],
            }
        )

    server.routes["/v1/completions"] = chunked(sse(c("he"), c("llo", "stop"), b"[DONE]"))

    class Comp(OpenAICompletionsUser):
        abstract = True

    env, u = user(server.url, Comp)
    r = u.complete("say hello")
    assert r.text == "hello" and r.id == "cmpl-9" and r.ttft_content == r.ttft
    assert r.finish_reason == "stop" and r.output_tokens == 2


@pytest.mark.timing  # measures wall-clock timing: run alone, not beside other tests
def test_llm_request_event_once_per_request_and_token_events_opt_in(server):
    server.routes["/v1/chat/completions"] = chunked(
        sse(ROLE, tok("a"), tok("b", "stop"), b"[DONE]")
    )
    env, u = user(server.url)
    seen, tokens = [], []
    env.events.llm_request.add_listener(lambda result, environment, **_: seen.append(result))
    env.events.llm_token.add_listener(lambda result, index, t_ms, **_: tokens.append((index, t_ms)))
    r = u.chat("hi")
    assert seen == [r] and tokens == []  # per-token events are opt-in (CPU per token)
    u.llm.token_events = True
    r2 = u.chat("hi")
    assert [i for i, _ in tokens] == [0, 1, 2]
    # live times are user-space stamps; kernel receive stamps (a little earlier) replace them
    assert tokens[0][1] == pytest.approx(r2.ttft, abs=5)
    assert tokens[-1][1] == pytest.approx(r2.e2e, abs=5)


def test_token_events_fire_as_each_chunk_arrives(server):
    # tokens 150 ms apart: each event must come when its chunk arrives, not after the stream
    server.routes["/v1/chat/completions"] = chunked(
        [
            (0.0, b"data: " + ROLE + b"\n\n"),
            (0.15, b"data: " + tok("a") + b"\n\n"),
            (0.15, b"data: " + tok("b", "stop") + b"\n\n"),
            (0.15, b"data: [DONE]\n\n"),
        ]
    )
    env, u = user(server.url)
    u.llm.token_events = True
    fired, ended = [], []

    def on_token(result, index, t_ms, text, environment, **_):
        fired.append((time.perf_counter(), index, text, result.token_chunks, environment))

    env.events.llm_token.add_listener(on_token)
    env.events.llm_request.add_listener(lambda **_: ended.append(time.perf_counter()))
    r = u.chat("hi")
    assert r.ok and [f[1] for f in fired] == [0, 1, 2]
    assert [f[2] for f in fired] == ["", "a", "b"] and [f[3] for f in fired] == [1, 2, 3]
    assert all(f[4] is env for f in fired)
    # token 0 came ~450 ms before the request finished, token 1 ~300 ms, the last ~150 ms
    lead = [ended[0] - f[0] for f in fired]
    assert lead[0] > 0.35 and lead[1] > 0.2 and lead[2] > 0.08, lead


def test_reset_stats_clears_llm_metrics_on_both_paths(server, monkeypatch):
    server.routes["/v1/chat/completions"] = chunked(sse(ROLE, tok("a", "stop"), b"[DONE]"))
    env, u = user(server.url)
    u.chat("hi")
    assert env.llm.collector.merged().completed == 1
    env.events.reset_stats.fire()  # the web UI button
    assert env.llm.collector.merged().completed == 0
    u.chat("hi")

    class Opts:
        reset_stats = True

    env.parsed_options = Opts()
    env.events.spawning_complete.fire(user_count=1)  # --reset-stats resets without the event
    assert env.llm.collector.merged().completed == 0


def test_warmup_by_requests_and_by_seconds_is_excluded(server):
    server.routes["/v1/chat/completions"] = chunked(sse(ROLE, tok("a", "stop"), b"[DONE]"))
    env, u = user(server.url)
    u.llm.warmup.requests = 2
    results = [u.chat("hi") for _ in range(5)]
    assert [r.warmup for r in results] == [True, True, False, False, False]
    assert env.llm.collector.merged().completed == 3
    assert env.stats.get("TTFT", "LLM").num_requests == 3  # LLM rows skip warm-up too
    env2, u2 = user(server.url)
    u2.llm.warmup.seconds = 3600
    assert u2.chat("hi").warmup and env2.llm.collector.merged().completed == 0


def test_llm_timeout_is_the_read_timeout_in_force(server):
    from locust.env import Environment as Env

    server.routes["/v1/chat/completions"] = chunked(sse(ROLE) + [(2.0, b"data: [DONE]\n\n")])
    env = Env(user_classes=[OpenAIChatUser], events=Events(), host=server.url)
    env.create_local_runner()

    class Opts:
        llm_timeout = 0.5
        llm_model = "m"

    env.parsed_options = Opts()
    u = type("U", (OpenAIChatUser,), {"abstract": False, "host": server.url})(env)
    r = u.chat("hi")
    assert r.error is not None and "read timeout: no data for 0.5s" in r.error, r.error
    assert r.stream_closed < 1500  # gave up after --llm-timeout, not after the class default


def test_an_exception_before_the_response_is_a_failure_and_never_shows_the_key(server):
    server.routes["/v1/chat/completions"] = chunked(sse(ROLE, tok("a", "stop"), b"[DONE]"))
    env, u = user(server.url)
    u.llm.api_key = "sk-SECRET"
    u.llm.auth_header = "Bearer sk-SECRET\n"  # what a key read with its newline would send
    r = u.chat("hi")
    assert r.error is not None and "request not sent" in r.error
    assert "sk-SECRET" not in r.error
    assert env.stats.get("/v1/chat/completions", "POST").num_failures == 1
    w = env.llm.collector.merged()
    assert w.completed == 0 and w.failed == 1


def test_a_timeout_around_chat_is_an_abort_and_propagates(server):
    import gevent

    server.routes["/v1/chat/completions"] = chunked(sse(ROLE) + [(2.0, b"data: [DONE]\n\n")])
    env, u = user(server.url)
    with pytest.raises(gevent.Timeout):
        with gevent.Timeout(0.3):
            u.chat("hi")
    w = env.llm.collector.merged()
    assert w.aborted == 1 and w.completed == 0 and w.failed == 0


def test_request_in_flight_across_a_stats_reset_is_left_out(server, monkeypatch):
    import gevent

    server.routes["/v1/chat/completions"] = chunked(
        sse(ROLE) + [(0.4, b"data: " + tok("a", "stop") + b"\n\n"), (0.0, b"data: [DONE]\n\n")]
    )
    env, u = user(server.url)
    g = gevent.spawn(u.chat, "hi")
    gevent.sleep(0.15)
    env.events.reset_stats.fire()  # mid-request
    r = g.get()
    assert r.ok and r.warmup  # finished fine, but started before the reset
    assert env.llm.collector.merged().completed == 0
    assert u.chat("hi").warmup is False and env.llm.collector.merged().completed == 1


BOOM = b'{"error":{"message":"boom","type":"InternalServerError","code":500}}'


def test_error_event_after_tokens_is_a_success_with_partial_tokens(server):
    """vLLM's rule: at least one token chunk and no exception is a success; the error event
    is kept beside it, not turned into a failure."""
    server.routes["/v1/chat/completions"] = chunked(sse(ROLE, tok("a"), tok("b"), BOOM, b"[DONE]"))
    env, u = user(server.url)
    r = u.chat("hi")
    assert r.error is None and r.ok
    assert r.midstream_error == "error event mid-stream: boom (type=InternalServerError, code=500)"
    assert r.output_tokens == 2 and r.output_tokens_source == "chunks" and r.token_chunks == 3
    assert env.stats.get("/v1/chat/completions", "POST").num_failures == 0
    s = u.llm.summary() if hasattr(u.llm, "summary") else None
    from locust_llm.metrics.summary import summarize

    s = summarize(u.llm.collector)
    assert s["completed"] == 1 and s["failed"] == 0 and s["midstream_errors"] == 1


def test_without_usage_only_text_chunks_count(server):
    """A server that ignores include_usage and ends with an empty-delta finish chunk: the
    role chunk and the empty finish chunk carry no token."""
    finish = orjson.dumps(
        {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    )
    server.routes["/v1/chat/completions"] = chunked(
        sse(ROLE, *[tok(c) for c in "abcd"], finish, b"[DONE]")
    )
    _, u = user(server.url)
    r = u.chat("hi", max_tokens=4)
    assert r.token_chunks == 6 and r.content_chunks == 4
    assert r.output_tokens == 4 and r.output_tokens_source == "chunks"
    assert r.tpot == pytest.approx((r.e2e - r.ttft) / 3)


def test_tokenizer_counts_output_without_usage(server, tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers

    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "foo": 3}
    tk = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.save(str(tmp_path / "tokenizer.json"))
    server.routes["/v1/chat/completions"] = chunked(
        sse(ROLE, tok("hello wor"), tok("ld foo"), tok(" hello", "stop"), b"[DONE]")
    )
    env, u = user(server.url)
    env.parsed_options = type("O", (), {"llm_tokenizer": str(tmp_path)})()
    u.llm.configure()
    r = u.chat("hi")
    # "hello world foo hello": 4 tokens, though 3 chunks carried it
    assert r.output_tokens == 4 and r.output_tokens_source == "tokenizer"


def test_usage_details_and_time_to_first_answer(server):
    reason = orjson.dumps(
        {"id": "c", "choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}}]}
    )
    usage = orjson.dumps(
        {
            "id": "c",
            "choices": [],
            "usage": {
                "prompt_tokens": 100,
                "completion_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": 64},
                "completion_tokens_details": {"reasoning_tokens": 1},
            },
        }
    )
    server.routes["/v1/chat/completions"] = chunked(
        [
            (0.01, b"data: " + ROLE + b"\n\n"),
            (0.03, b"data: " + reason + b"\n\n"),
            (0.03, b"data: " + tok("a") + b"\n\n"),
            (0.0, b"data: " + tok("b", "stop") + b"\n\n"),
            (0.0, b"data: " + usage + b"\n\n"),
            (0.0, b"data: [DONE]\n\n"),
        ]
    )
    _, u = user(server.url)
    r = u.chat("hi")
    assert r.cached_tokens == 64 and r.reasoning_tokens == 1 and r.output_tokens == 3
    assert r.ttft < r.ttft_content < r.ttfot  # role, reasoning, then the answer
    assert r.ttfot - r.ttft_content >= 20
    from locust_llm.metrics.summary import summarize

    s = summarize(u.llm.collector)
    assert s["total_cached_tokens"] == 64 and s["prefix_cache_hit_rate"] == 0.64
    assert s["total_reasoning_tokens"] == 1
    assert s["mean_ttfot_ms"] == pytest.approx(r.ttfot)


def test_continuous_usage_gives_tokens_per_chunk(server):
    def c(text, n, finish=None):
        return orjson.dumps(
            {
                "id": "c",
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
                "usage": {"prompt_tokens": 5, "completion_tokens": n},
            }
        )

    server.routes["/v1/chat/completions"] = chunked(
        [
            (0.0, b"data: " + c("", 0) + b"\n\n"),
            (0.02, b"data: " + c("ab", 1) + b"\n\n"),
            (0.04, b"data: " + c("cde", 4) + b"\n\n"),
            (0.02, b"data: " + c("f", 5, "stop") + b"\n\n"),
            (0.0, b"data: [DONE]\n\n"),
        ]
    )
    _, u = user(server.url)
    assert "continuous_usage_stats" not in str(u.llm.continuous_usage)
    r = u.chat("hi", continuous_usage=True)
    assert server.bodies[-1]["stream_options"] == {
        "include_usage": True,
        "continuous_usage_stats": True,
    }
    assert r.chunk_tokens == [0, 1, 3, 1] and r.output_tokens == 5
    from locust_llm.metrics.summary import summarize

    s = summarize(u.llm.collector)
    assert s["mean_tokens_per_chunk"] == pytest.approx(5 / 3)  # over chunks carrying tokens
    # token-weighted ITL: the 40 ms gap before 3 tokens is 3 samples of 13.3 ms
    assert s["count_itl_token"] == 4
    assert s["mean_itl_token_ms"] == pytest.approx(sum(r.itl[1:]) / 4, rel=1e-9)


@pytest.mark.parametrize("call", ["chat", "complete"])
def test_stream_false_is_refused_as_the_locustfiles_choice_not_the_servers(server, call):
    # the server answers a non-streamed request with JSON: the error must name the cause
    server.routes["/v1/chat/completions"] = plain("200 OK", b'{"id":"x","choices":[]}')
    server.routes["/v1/completions"] = plain("200 OK", b'{"id":"x","choices":[]}')

    class Comp(OpenAICompletionsUser):
        abstract = True

    env, u = user(server.url, Chat if call == "chat" else Comp)
    r = getattr(u, call)("hi", stream=False)
    assert r.error.startswith("stream=False in the request body"), r.error
    assert "streamed responses only" in r.error and "server" not in r.error
    assert server.hits == 0  # nothing sent
    assert env.stats.get(u.path, "POST").num_failures == 1
    assert env.llm.collector.merged().failed == 1


def test_ctrl_c_inside_a_users_read_is_an_abort_not_a_success(server):
    # SIGINT raises KeyboardInterrupt in whichever greenlet runs: here, mid-stream
    server.routes["/v1/chat/completions"] = chunked(
        sse(ROLE, tok("a"), tok("b"), tok("c", "stop"), b"[DONE]")
    )
    env, u = user(server.url)
    u.llm.token_events = True
    seen = []

    def interrupt(index, **_):
        if index == 1:
            raise KeyboardInterrupt

    env.events.llm_token.add_listener(interrupt)
    env.events.llm_request.add_listener(lambda result, **_: seen.append(result))
    with pytest.raises(KeyboardInterrupt):
        u.chat("hi")
    assert seen[0].aborted and seen[0].error.startswith("aborted: ")
    m = env.llm.collector.merged()
    assert m.completed == 0 and m.aborted == 1


def test_aborted_record_describes_the_tokens_it_got(server):
    # cut off after the role chunk and two tokens: the record's TTFT, chunk count, text and
    # gaps must describe the same three chunks (not ttft null beside a list of gaps)
    server.routes["/v1/chat/completions"] = chunked(
        [
            (0.02, b"data: " + ROLE + b"\n\n"),
            (0.02, b"data: " + tok("a") + b"\n\n"),
            (0.02, b"data: " + tok("b") + b"\n\n"),
            (5.0, b"data: [DONE]\n\n"),
        ]
    )
    env, u = user(server.url)
    u.network_timeout = 10
    seen = []
    env.events.llm_request.add_listener(lambda result, **_: seen.append(result))
    with pytest.raises(gevent.Timeout):
        with gevent.Timeout(0.4):
            u.chat("hi")
    r = seen[0].to_record()
    assert r["aborted"] and r["e2e"] is None  # it never ended
    assert r["token_chunks"] == 3 and len(r["itl"]) == 2 and seen[0].text == "ab"
    assert r["ttft"] is not None and r["ttft_content"] > r["ttft"]
