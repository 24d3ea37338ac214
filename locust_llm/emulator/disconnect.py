"""Noticing a client that went away while its request waits (queued, or between tokens).

vLLM's server listens for the disconnect while it streams and aborts the request at once,
so a request whose client left stops holding a queue place or a running slot before its next
token is due. The emulator only learns of it from a failed write otherwise; this watcher
waits for the socket to become readable (a client streaming a response sends nothing, so
readable means closed, or the next keep-alive request) and, on end of file, throws
:class:`ClientGone` into the greenlet serving the request. It is a bare event-loop watcher
with a callback, not a greenlet: a few microseconds per request.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

import gevent
from gevent import get_hub

__all__ = ["ClientGone", "watch"]

_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT


class ClientGone(ConnectionResetError):
    """The client closed the connection of the request being served. A connection reset,
    so that pywsgi closes quietly if it lands outside the response body (a throw already on
    its way when the request ended)."""

    def __init__(self) -> None:
        super().__init__(errno.ECONNRESET, "client closed the connection")


class _Watch:
    __slots__ = ("io", "serving", "sock")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.serving = gevent.getcurrent()
        self.io = get_hub().loop.io(sock.fileno(), 1)  # 1: readable
        self.io.start(self._readable)

    def _readable(self) -> None:
        self.io.stop()
        try:
            gone = self.sock.recv(1, _PEEK) == b""
        except BlockingIOError:
            return  # nothing after all
        except OSError:
            gone = True
        if gone:
            gevent.kill(self.serving, ClientGone())

    def kill(self) -> None:
        self.io.stop()
        self.io.close()


def watch(sock: Any | None) -> _Watch | None:
    """Watch ``sock`` for the current greenlet; call ``kill()`` on the result when done."""
    return _Watch(sock) if sock is not None else None
