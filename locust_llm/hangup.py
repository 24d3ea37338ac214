"""Reading a stream the client will hang up on (``--llm-cancel-rate``/``--llm-cancel-after``).

Kept apart from the hot loop in ``users.py``: only the cancelled share of requests pays for
the token-count check and the timer. Hanging up closes the socket (not returned to the
pool), so the server sees the disconnect as it does when a real client goes away, and the
bytes still in flight are never read.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from geventhttpclient.response import HTTPParseError

from locust_llm.stream import StreamAccumulator
from locust_llm.workload.cancel import CancelAfter

__all__ = ["hang_up", "read_until_cancel"]


class _TimeUp(Exception):
    """Raised in the reading greenlet by the cancel timer."""


def hang_up(r: Any) -> None:
    """Close the connection under a streamed Locust ``FastResponse`` (never reused: the
    message is incomplete, so geventhttpclient closes the socket instead of pooling it)."""
    ghc = getattr(r, "_response", None)
    release = getattr(ghc, "release", None)
    if release is not None:
        release()


def read_until_cancel(r: Any, acc: StreamAccumulator, after: CancelAfter, t0: float) -> bool:
    """Feed ``r``'s lines to ``acc`` until the stream ends or ``after`` is reached; True
    when the client hung up. Tokens are output tokens (chunks carrying text, reasoning or a
    tool call); time counts from the send, and a time already past when the response
    headers arrive hangs up at once."""
    perf = time.perf_counter
    limit = after.tokens
    timer = None
    if after.seconds is not None:
        left = t0 + after.seconds - perf()
        if left <= 0:
            hang_up(r)
            return True
        timer = gevent.Timeout(left, _TimeUp())
        timer.start()
    readline = r.stream.readline
    feed = acc.feed
    try:
        while True:
            try:
                line = readline(b"\n")
            except HTTPParseError:
                return False
            now = perf()
            if not line:
                return False
            feed(line, now)
            if limit is not None and acc.content_chunks >= limit:
                hang_up(r)
                return True
    except _TimeUp:
        hang_up(r)
        return True
    finally:
        if timer is not None:
            timer.close()
