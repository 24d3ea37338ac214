"""A scripted HTTP/1.1 server on 127.0.0.1 for client failure tests.

The emulator behaves like vLLM; this one misbehaves on purpose, byte for byte: each route
returns a list of (delay_s, bytes) writes, so tests can produce truncated streams, bad JSON,
flat errors, HTML bodies, stalls and resets exactly.
"""

from __future__ import annotations

import json
import socket
import struct

import gevent
from gevent.server import StreamServer


def sse(*payloads: bytes) -> list[tuple[float, bytes]]:
    return [(0.0, b"data: " + p + b"\n\n") for p in payloads]


def chunked(
    writes: list[tuple[float, bytes]],
    status: str = "200 OK",
    ctype: str = "text/event-stream",
    end: bool = True,
) -> list[tuple[float, bytes]]:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    out = [(0.0, head)]
    for delay, data in writes:
        out.append((delay, b"%x\r\n%s\r\n" % (len(data), data)))
    if end:
        out.append((0.0, b"0\r\n\r\n"))
    return out


def plain(status: str, body: bytes, ctype: str = "application/json") -> list[tuple[float, bytes]]:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return [(0.0, head + body)]


class FakeServer:
    """``routes[path] = list of (delay, bytes)`` or the string ``"reset"``. ``idle_close``:
    close a keep-alive connection that waits that many seconds for its next request, as
    uvicorn does after ``timeout_keep_alive``."""

    def __init__(self, idle_close: float | None = None) -> None:
        self.routes: dict[str, object] = {}
        self.bodies: list[object] = []  # request bodies received (JSON), oldest first
        self.hits = 0  # requests received
        self.connections = 0  # connections accepted
        self.idle_close = idle_close
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def _request_line(self, f) -> bytes:
        if self.idle_close is None:
            return f.readline()
        with gevent.Timeout(self.idle_close, False):
            return f.readline()
        return b""  # idle too long: closed

    def _handle(self, sock, _addr) -> None:
        self.connections += 1
        f = sock.makefile("rb")
        try:
            while True:
                line = self._request_line(f)
                if not line:
                    return
                path = line.split()[1].decode()
                self.hits += 1
                length = 0
                while True:
                    h = f.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    if h.lower().startswith(b"content-length:"):
                        length = int(h.split(b":")[1])
                if length:
                    body = f.read(length)
                    try:
                        self.bodies.append(json.loads(body))
                    except ValueError:
                        self.bodies.append(body)
                script = self.routes.get(
                    path, plain("404 Not Found", b'{"error":{"message":"no route"}}')
                )
                if script == "reset":
                    # SO_LINGER 0: close() sends RST, as a killed process's socket does
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                for delay, data in script:  # type: ignore[union-attr]
                    if delay:
                        gevent.sleep(delay)
                    sock.sendall(data)
                complete = script[-1][1].endswith(b"0\r\n\r\n") or b"Content-Length" in script[0][1]  # type: ignore[index]
                if not complete:  # a truncated response: close like a crashed server
                    return
        except OSError:
            return
        finally:
            try:
                f.close()  # the file holds the socket open: both go, so the FIN is sent now
                sock.close()
            except OSError:
                pass

    def stop(self) -> None:
        self.server.stop(timeout=1)
