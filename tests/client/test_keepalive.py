"""Keep-alive through the users' connection pools: a socket the server closed while idle is
never handed to a request, and keep-alive still works with descriptors above FD_SETSIZE."""

from __future__ import annotations

import os
import resource
import socket

import gevent
import orjson
import pytest
from geventhttpclient.connectionpool import ConnectionPool
from locust.env import Environment
from locust.event import Events

from locust_llm import OpenAIChatUser, OpenAIEmbeddingsUser
from locust_llm.keepalive import guard_keepalive, is_stale
from locust_llm.timestamps import kernel_timestamps_supported
from locust_llm.timestamps.socket import TimestampingSocket
from tests.client.fakeserver import FakeServer, chunked, plain, sse

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"


def _chunk(delta: dict, finish: str | None = None) -> bytes:
    return orjson.dumps({"id": "c1", "object": "chat.completion.chunk",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})  # fmt: skip


STREAM = chunked(
    sse(
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "a"}, "length"),
        b'{"id":"c1","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1}}',
        b"[DONE]",
    )
)
EMBEDDING = plain(
    "200 OK",
    b'{"id":"e1","object":"list","data":[{"index":0,"object":"embedding","embedding":[0.5]}],'
    b'"usage":{"prompt_tokens":1,"total_tokens":1}}',
)


class Chat(OpenAIChatUser):
    abstract = True
    network_timeout = 2.0


class Embed(OpenAIEmbeddingsUser):
    abstract = True
    network_timeout = 2.0


def make_user(url: str, cls: type, stamps: str):
    env = Environment(user_classes=[cls], events=Events(), host=url)
    env.parsed_options = type("O", (), {"llm_timestamps": stamps})()
    env.create_local_runner()  # hooks Locust's stats to the request event
    u = type("U", (cls,), {"abstract": False, "host": url})(env)
    u.llm.model = "m"
    return env, u


def send(u) -> object:
    return u.embed(["x"]) if isinstance(u, OpenAIEmbeddingsUser) else u.chat("hi", max_tokens=1)


@pytest.fixture
def no_library_check(monkeypatch):
    """geventhttpclient before 2.3.8 (Locust allows 2.3.1): its pool checks nothing."""
    monkeypatch.setattr(ConnectionPool, "_is_socket_alive", lambda self, s: True, raising=False)


CASES = [
    pytest.param(Chat, "user", id="chat-gevent-socket"),
    pytest.param(
        Chat,
        "kernel",
        id="chat-timestamping-socket",
        marks=pytest.mark.skipif(not kernel_timestamps_supported(), reason="no SO_TIMESTAMPNS"),
    ),
    pytest.param(Embed, "user", id="embeddings"),
]


@pytest.mark.parametrize(("cls", "stamps"), CASES)
def test_a_socket_the_server_closed_while_idle_is_never_reused(no_library_check, cls, stamps):
    server = FakeServer(idle_close=0.3)  # uvicorn's timeout_keep_alive, scaled down
    server.routes[CHAT], server.routes[EMBED] = STREAM, EMBEDDING
    try:
        env, u = make_user(server.url, cls, stamps)
        first = send(u)
        pool = u.client.client.clientpool.get_client(server.url)._connection_pool
        sock = pool._socket_queue.peek()
        assert isinstance(sock, TimestampingSocket) == (stamps == "kernel")
        gevent.sleep(0.6)  # the server closes the idle connection meanwhile
        second = send(u)
        assert first.ok and second.ok, (first.error, second.error)
        row = env.stats.get(EMBED if cls is Embed else CHAT, "POST")
        assert row.num_requests == 2 and row.num_failures == 0
        assert server.connections == 2  # the closed one was dropped, a new one carried it
    finally:
        server.stop()


@pytest.fixture
def high_descriptors():
    """Enough descriptors held open that the next socket's is at or above FD_SETSIZE, as
    in a process running a thousand users."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1200
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"RLIMIT_NOFILE {hard} < {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    held = []
    try:
        while not held or held[-1] < 1030:
            held.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_keep_alive_holds_with_descriptors_above_fd_setsize(high_descriptors):
    # geventhttpclient's own check is select(), which refuses such descriptors: it took
    # every pooled socket for dead, and each request opened a new connection
    server = FakeServer(idle_close=0.3)
    server.routes[CHAT] = STREAM
    try:
        env, u = make_user(server.url, Chat, "user")
        results = [send(u), send(u)]
        assert server.connections == 1  # back to back: one kept-alive connection
        gevent.sleep(0.6)
        results.append(send(u))
        assert all(r.ok for r in results), [r.error for r in results]
        assert server.connections == 2 and env.stats.get(CHAT, "POST").num_failures == 0
    finally:
        server.stop()


def test_is_stale_on_real_sockets():
    a, b = socket.socketpair()
    try:
        assert not is_stale(a)  # idle, nothing to read: reusable
        b.sendall(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        assert is_stale(a)  # bytes nobody asked for
    finally:
        a.close()
        b.close()
    a, b = socket.socketpair()
    b.close()
    assert is_stale(a)  # EOF
    a.close()
    assert is_stale(a)  # closed here (fileno -1)


def test_guard_is_idempotent_and_covers_clients_made_later():
    env, u = make_user("http://127.0.0.1:9", Chat, "user")  # install_client guarded it
    cpool = u.client.client.clientpool
    pool = cpool.get_client("http://127.0.0.1:9")._connection_pool
    wrapped = pool.get_socket
    guard_keepalive(u.client)
    assert pool.get_socket is wrapped and pool._llm_keepalive
    other = cpool.get_client("http://127.0.0.2:9")._connection_pool  # an absolute URL's host
    assert getattr(other, "_llm_keepalive", False)
