"""Waiting for a streamed response's next bytes: one wake-up and one timer per response.

Why not ``sock.recv``: gevent's ``recv`` first tries the read, takes the ``EWOULDBLOCK``
error, builds a ``Timeout`` for the socket's timeout, waits, stops the timer and reads
again. On a paced stream that whole sequence runs for every token: a failed system call, an
exception and a timer start/stop that a drained socket did not need. Here a response that
was just drained waits for readability first (:meth:`ReadWait.wait`), then reads with a
non-blocking ``recv`` that returns None instead of raising when nothing is there, and the
socket's timeout is one deadline timer for the whole response, moved forward lazily: it
fires at most once per timeout and throws only into a wait that has seen no byte for that
long, as gevent's per-read timeout would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent.socket
from gevent import getcurrent
from gevent.exceptions import ConcurrentObjectUseError

__all__ = ["ReadWait", "nonblocking_recv"]

_perf = time.perf_counter


def nonblocking_recv(sock: Any) -> Callable[[int], bytes | None] | None:
    """A ``recv(n)`` for ``sock`` that never waits: the bytes there (``b""`` at EOF) or None
    when there are none yet. None for a socket this cannot read raw (TLS, a non-blocking
    user socket, another socket class): the caller reads it with its own ``recv``."""
    if sock.timeout == 0.0:
        return None
    ready = getattr(sock, "recv_ready", None)  # the timestamping socket: stamps come along
    if ready is not None:
        return ready
    if type(sock) is not gevent.socket.socket:
        return None
    raw = sock._sock.recv

    def recv(n: int) -> bytes | None:
        try:
            return raw(n)
        except BlockingIOError:
            return None

    return recv


class ReadWait:
    """Blocks the reading greenlet until ``sock`` is readable, with the socket's timeout
    counted from the last byte read (``since``) rather than from each wait."""

    __slots__ = ("_event", "_hub", "_since", "_timeout", "_timer", "_waiting")

    def __init__(self, sock: Any) -> None:
        self._hub = sock.hub
        self._event = sock._read_event
        self._timeout: float | None = sock.timeout
        self._timer: Any = None
        self._since = 0.0
        self._waiting: Any = None  # the greenlet inside wait(), else None

    def wait(self, since: float) -> None:
        """Return once the socket is readable; raise ``TimeoutError`` when no byte has come
        for the socket's timeout since ``since`` (perf_counter s of the last read)."""
        event = self._event
        if event.callback is not None:
            raise ConcurrentObjectUseError(
                f"This socket is already used by another greenlet: {event.callback!r}"
            )
        self._since = since
        if self._timer is None and self._timeout is not None:
            self._arm(self._timeout - (_perf() - since))
        self._waiting = getcurrent()
        try:
            self._hub.wait(event)
        finally:
            self._waiting = None

    def _arm(self, after: float) -> None:
        timer = self._timer = self._hub.loop.timer(max(after, 0.0))
        timer.start(self._expired)

    def _expired(self) -> None:
        """In the hub: the deadline may have moved with reads since it was set; throw only
        into a wait whose silence has reached the timeout, else set it again."""
        self._timer = None
        timeout = self._timeout
        assert timeout is not None
        left = self._since + timeout - _perf()
        glet = self._waiting
        if glet is None or left > 0:
            self._arm(left if left > 0 else timeout)
            return
        glet.throw(TimeoutError("timed out"))

    def close(self) -> None:
        """Stop the deadline (the response ended, or its reader left)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.stop()
            timer.close()
