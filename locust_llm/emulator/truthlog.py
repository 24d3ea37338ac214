"""``--emu-truth-log``: the emulator's own record of when it wrote each token.

One JSON line per finished request: ``{"id", "t_arrival", "t_send": [...], "t_written": [...],
"t_tx": [...], "finish_reason", "session_id"}`` (``session_id``: the request's X-Session-Id
header, or null; ``t_tx`` for streams on Linux only: the kernel's transmit stamp of each
chunk's write, CLOCK_REALTIME like a client's ``SO_TIMESTAMPNS`` arrival stamps, null where
the kernel gave none; see ``txstamps``).
Times are ``time.perf_counter()`` seconds, which on Linux is CLOCK_MONOTONIC (the same clock a
client on the same host reads with ``time.monotonic()``/``perf_counter()``): ``t_send`` just
before the socket write that carries the chunk, ``t_written`` once that write returned (the
bytes left in between; a chunk whose window is wide, the host having paused the emulator, has
an uncertain reference time). For chat the first entry is the role chunk. Chunks written in one
send share a time; ``t_written`` is shorter when the client left mid-stream. Lines are
buffered and flushed every 256 requests and at exit.
"""

from __future__ import annotations

import orjson


class TruthLog:
    def __init__(self, path: str) -> None:
        self._f = open(path, "ab")
        self._buf: list[bytes] = []

    def record(self, rid: str, t_arrival: float, t_send: list[float], **extra) -> None:
        self._buf.append(
            orjson.dumps({"id": rid, "t_arrival": t_arrival, "t_send": t_send, **extra}) + b"\n"
        )
        if len(self._buf) >= 256:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self._f.write(b"".join(self._buf))
            self._buf.clear()
        self._f.flush()

    def close(self) -> None:
        self.flush()
        self._f.close()
