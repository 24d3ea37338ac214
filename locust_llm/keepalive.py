"""Drop a pooled keep-alive socket the server has already closed, before a request uses it.

Why: servers close keep-alive connections left idle (uvicorn, so vLLM, after 5 s), and a
request sent on such a pooled socket fails with ``HTTPConnectionClosed``: a failure the
run counts against the server, hitting exactly the users that idle (trace replay, paced
users with long waits). An idle keep-alive socket has nothing to read, so one that polls
readable holds an EOF, a reset or bytes nobody asked for: it is closed and the pool hands
out the next one, a new connection at worst (what urllib3 does).

geventhttpclient checks this itself only from 2.3.8 on (Locust allows older), and with
``select()``, which refuses descriptors at or above FD_SETSIZE (1024): in a process with a
thousand users its check takes every pooled socket for dead, and every request opens a new
connection. So on the pools hooked here its check is switched off and ours, one ``poll``
with timeout 0 (one syscall per request, any descriptor, any socket class: gevent's,
:class:`~locust_llm.timestamps.socket.TimestampingSocket`, TLS) runs in ``get_socket``.
A server closing in the instant between the check and the send still fails the request:
that race is the server's timeout, as with any client.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any

from gevent.monkey import get_original

__all__ = ["guard_keepalive", "is_stale", "on_every_client", "unwrap_session"]

# the interpreter's poll, not gevent's: a zero timeout must be one syscall, never a switch
_poll: Any = get_original("select", "poll") if hasattr(select, "poll") else None
_select: Any = get_original("select", "select")
_POLLIN: int = getattr(select, "POLLIN", 1)


def is_stale(sock: Any) -> bool:
    """True when an idle pooled ``sock`` cannot carry a request: closed here, or readable
    (EOF, reset, error or unexpected bytes from the server)."""
    try:
        fd = sock.fileno()
        if fd < 0:
            return True
        if _poll is None:  # no poll() (Windows): select has no descriptor ceiling there
            return bool(_select([fd], [], [], 0)[0])
        p = _poll()
        p.register(fd, _POLLIN)  # POLLHUP, POLLERR and POLLNVAL are always reported
        return bool(p.poll(0))
    except (OSError, ValueError):
        return True


def _unchecked(sock: Any) -> bool:
    return sock is not None


def guard_pool(pool: Any) -> None:
    """Make a geventhttpclient ``ConnectionPool`` hand out no stale socket (idempotent)."""
    if getattr(pool, "_llm_keepalive", False):
        return
    original = pool.get_socket
    if hasattr(pool, "_is_socket_alive"):
        pool._is_socket_alive = _unchecked  # its select() check, replaced by ours below

    def get_socket() -> Any:
        # each stale socket leaves the pool for good: after `size` of them it holds none,
        # and the next one is a new connection
        for _ in range(pool.size):
            sock = original()
            if not is_stale(sock):
                return sock
            pool.release_socket(sock)  # closes it and frees its slot
        return original()

    pool.get_socket = get_socket
    pool._llm_keepalive = True


def _guard_client(client: Any) -> None:
    guard_pool(client._connection_pool)


def on_every_client(cpool: Any, hook: Callable[[Any], Any]) -> None:
    """Call ``hook`` on every ``HTTPClient`` of a geventhttpclient ``HTTPClientPool``: those
    it holds now and each one it creates later (one per host, on first use). ``hook`` must
    be idempotent; every hook is registered once per pool."""
    hooks: list[Callable[[Any], Any]] | None = getattr(cpool, "_llm_client_hooks", None)
    if hooks is None:
        hooks = cpool._llm_client_hooks = []
        original = cpool.get_client

        def get_client(url: Any) -> Any:
            known = len(cpool.clients)
            client = original(url)
            if len(cpool.clients) != known:
                for h in hooks:
                    h(client)
            return client

        cpool.get_client = get_client
    if hook not in hooks:
        hooks.append(hook)
    for client in list(cpool.clients.values()):
        hook(client)


def unwrap_session(target: Any) -> Any:
    """The geventhttpclient object behind ``target``: a Locust ``FastHttpSession``
    (``user.client``) or a ``UserAgent`` gives its ``HTTPClientPool``; anything else is
    returned as it is."""
    from geventhttpclient.useragent import UserAgent

    inner = getattr(target, "client", None)
    if isinstance(inner, UserAgent):  # FastHttpSession
        target = inner
    if isinstance(target, UserAgent):
        target = target.clientpool
    return target


def guard_keepalive(target: Any) -> None:
    """Make every connection pool of ``target`` drop stale keep-alive sockets, now and for
    hosts it reaches later: a Locust ``FastHttpSession`` (``user.client``), a
    geventhttpclient ``UserAgent``, ``HTTPClientPool``, ``HTTPClient`` or ``ConnectionPool``."""
    from geventhttpclient.client import HTTPClient, HTTPClientPool
    from geventhttpclient.connectionpool import ConnectionPool

    target = unwrap_session(target)
    if isinstance(target, HTTPClientPool):
        on_every_client(target, _guard_client)
    elif isinstance(target, HTTPClient):
        _guard_client(target)
    elif isinstance(target, ConnectionPool):
        guard_pool(target)
    else:
        raise TypeError(f"cannot guard the keep-alive pool of {type(target).__name__}")
