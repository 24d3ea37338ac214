"""A tiny gevent HTTP/1.1 client for the tests: chunked decoding + SSE events with timestamps.

Independent of the emulator's code on purpose (a second implementation catches framing bugs).
"""

from __future__ import annotations

import time

import orjson
from gevent import socket


class Conn:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> bool:
        d = self.sock.recv(65536)
        if not d:
            return False
        self.buf += d
        return True

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("eof")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError("eof")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def request(
        self, method: str, path: str, body: dict | None = None, headers: dict | None = None
    ):
        """Send; return (status, headers, iterator of (t, bytes) body pieces)."""
        data = orjson.dumps(body) if body is not None else b""
        h = {
            "Host": "x",
            "Content-Type": "application/json",
            "Content-Length": str(len(data)),
            **(headers or {}),
        }
        head = (
            f"{method} {path} HTTP/1.1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in h.items())
            + "\r\n"
        )
        self.sock.sendall(head.encode() + data)
        status = int(self._line().split()[1])
        hdrs = {}
        while True:
            line = self._line()
            if not line:
                break
            k, _, v = line.decode().partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return status, hdrs, self._body(hdrs)

    def _body(self, hdrs):
        if hdrs.get("transfer-encoding") == "chunked":
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    self._line()
                    return
                data = self._exact(size)
                self._exact(2)
                yield time.perf_counter(), data
        else:
            n = int(hdrs.get("content-length", 0))
            yield time.perf_counter(), self._exact(n)


def sse_events(pieces) -> list[tuple[float, bytes]]:
    """(arrival time, payload) of every ``data:`` event of a body."""
    out, pending = [], b""
    for t, data in pieces:
        pending += data
        while b"\n\n" in pending:
            ev, _, pending = pending.partition(b"\n\n")
            assert ev.startswith(b"data: "), ev
            out.append((t, ev[6:]))
    assert pending == b"", pending
    return out


def post(port: int, path: str, body: dict, headers: dict | None = None):
    """One request on a fresh connection: (status, headers, body bytes, events or None)."""
    c = Conn(port)
    try:
        status, hdrs, pieces = c.request("POST", path, body, headers)
        pieces = list(pieces)
        raw = b"".join(p for _, p in pieces)
        events = (
            sse_events(pieces)
            if hdrs.get("content-type", "").startswith("text/event-stream")
            else None
        )
        return status, hdrs, raw, events
    finally:
        c.close()


def get(port: int, path: str, headers: dict | None = None):
    c = Conn(port)
    try:
        status, hdrs, pieces = c.request("GET", path, None, headers)
        return status, hdrs, b"".join(p for _, p in pieces)
    finally:
        c.close()
