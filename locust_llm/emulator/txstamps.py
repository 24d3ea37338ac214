"""The kernel's transmit stamps of a connection's writes, for the truth log.

Why: the times the emulator logs around a write (``t_send`` before it, ``t_written`` after it)
are user-space clock readings; a host that pauses the emulator between the reading and the
send moves the reference by the pause. With ``SO_TIMESTAMPING``'s software transmit stamp the
kernel stamps each send as its last byte leaves for the device (on loopback, just before the
receiving socket's arrival stamp), so a benchmark compares the client's kernel arrival stamps
with kernel send stamps and sees the client's own error alone.

Stamps come back on the socket's error queue. :meth:`TxStamps.take` drains it without
waiting and returns the newest stamp: on loopback a send is transmitted within the call, so
the newest stamp after a write returned is that write's; a write whose bytes the kernel held
back (a full window) finds none and its reference is unknown (None).
"""

from __future__ import annotations

import socket
import struct
from typing import Any

__all__ = ["TxStamps"]

SO_TIMESTAMPING = getattr(socket, "SO_TIMESTAMPING", 37)
SCM_TIMESTAMPING = SO_TIMESTAMPING
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_ID = 1 << 7
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
FLAGS = (
    SOF_TIMESTAMPING_TX_SOFTWARE
    | SOF_TIMESTAMPING_SOFTWARE
    | SOF_TIMESTAMPING_OPT_ID
    | SOF_TIMESTAMPING_OPT_TSONLY
)
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
_TIMESPECS = struct.Struct("qqqqqq")  # struct scm_timestamping: software, (legacy), hardware
_ANC = 512


class TxStamps:
    """Transmit stamps of one connection (CLOCK_REALTIME seconds, as the receiver's
    ``SO_TIMESTAMPNS`` arrival stamps)."""

    __slots__ = ("_recvmsg",)

    def __init__(self, raw: socket.socket) -> None:
        self._recvmsg = raw.recvmsg

    @classmethod
    def enable(cls, sock: Any) -> TxStamps | None:
        """Turn the stamps on for ``sock`` (a gevent or plain TCP socket); None where the
        kernel refuses (not Linux, or no software timestamping)."""
        raw = getattr(sock, "_sock", sock)
        try:
            raw.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, FLAGS)
        except (OSError, AttributeError):
            return None
        return cls(raw)

    def take(self) -> float | None:
        """The newest transmit stamp queued since the last call, or None."""
        newest = None
        recvmsg = self._recvmsg
        while True:
            try:
                _data, anc, _flags, _addr = recvmsg(1, _ANC, MSG_ERRQUEUE | socket.MSG_DONTWAIT)
            except OSError:  # nothing queued (EAGAIN), or the connection is gone
                return newest
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPING:
                    sec, nsec = _TIMESPECS.unpack_from(data)[:2]
                    if sec or nsec:
                        newest = sec + nsec * 1e-9
