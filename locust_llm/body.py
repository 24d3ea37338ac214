"""Read a streamed geventhttpclient response body one socket read at a time.

Why not ``readline``: it returns one line per call (a Python-level search, copy and delete
each), so a token event costs two calls, two clock readings and two parser calls, and at
100k+ tokens/s that per-line work is most of the client's CPU. Here every ``recv`` goes
through geventhttpclient's own HTTP parser (chunked decoding, message end, errors exactly as
``readline`` sees them) and the decoded body bytes of that read are handed on whole, with one
``perf_counter()`` taken after the read.

It reads the response's body buffer and socket directly (``_body_buffer``, ``_sock``,
``feed``), the same members ``readline`` uses; a response without them (another
geventhttpclient) is read through ``readline`` instead, one line per call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gevent import sleep
from geventhttpclient.response import HTTPConnectionClosed

from locust_llm.readwait import ReadWait, nonblocking_recv

__all__ = ["READ_SIZE", "WAIT_FIRST_BELOW", "read_body"]

#: Bytes asked of one ``recv``. Larger than geventhttpclient's 4 KiB so that a backlog of
#: tokens (a client that fell behind) drains in few reads; a read that fills it is marked
#: as such by the timestamping socket (its tokens shared a read).
READ_SIZE = 64 * 1024

#: A read shorter than this drained the socket of a stream the server paces (a token event
#: is a few hundred bytes): the next read waits for data first instead of trying and failing.
#: A longer read is a backlog, and the next read is tried at once.
WAIT_FIRST_BELOW = 2048


def read_body(
    stream: Any,
    feed_block: Callable[[bytes, float], None],
    read_size: int = READ_SIZE,
    perf: Callable[[], float] = time.perf_counter,
) -> None:
    """Feed ``stream``'s body to ``feed_block(data, now)`` read by read until it ends.

    Raises what the transport raises: ``HTTPParseError`` when the connection closes inside
    the body, socket errors and timeouts; the response is released on any of them.
    """
    buf = getattr(stream, "_body_buffer", None)
    if not isinstance(buf, bytearray) or not hasattr(stream, "feed"):
        _read_lines(stream, feed_block, perf)
        return
    sock = stream._sock
    recv = nonblocking_recv(sock) if sock is not None else None
    if recv is None:
        _read_blocking(stream, buf, feed_block, read_size, perf)
        return
    parse = stream.feed
    waiter = ReadWait(sock)
    loop = sock.hub.loop
    now = perf()
    wait_first = True  # the headers have just been read: the body's first bytes are ahead
    try:
        while True:
            if buf:
                data = bytes(buf)
                del buf[:]
                feed_block(data, now)
            if stream.message_complete:
                return
            if stream._sock is None:
                raise HTTPConnectionClosed("connection closed.")
            try:
                if wait_first:
                    waiter.wait(now)
                got = recv(read_size)
                if got is None:  # woken with nothing to read
                    wait_first = True
                    continue
                now = perf()
                wait_first = len(got) < WAIT_FIRST_BELOW
                if loop.pendingcnt:
                    # other sockets are ready in this loop turn: let their readers take
                    # their bytes (and stamps) before this read is decoded
                    sleep(0)
                parse(got)
            except BaseException:
                stream.release()
                raise
    finally:
        waiter.close()


def _read_blocking(
    stream: Any, buf: bytearray, feed_block: Callable[[bytes, float], None], read_size: int,
    perf: Callable[[], float],
) -> None:  # fmt: skip
    """The same loop over the socket's own blocking ``recv`` (TLS and other sockets)."""
    parse = stream.feed
    while True:
        if buf:
            data = bytes(buf)
            del buf[:]
            feed_block(data, perf())
        if stream.message_complete:
            return
        sock = stream._sock
        if sock is None:
            raise HTTPConnectionClosed("connection closed.")
        try:
            parse(sock.recv(read_size))
        except BaseException:
            stream.release()
            raise


def _read_lines(stream: Any, feed_block: Callable[[bytes, float], None], perf: Any) -> None:
    readline = stream.readline
    while True:
        line = readline(b"\n")
        if not line:
            return
        feed_block(line, perf())
