"""Kernel receive timestamps (``SO_TIMESTAMPNS``) for token arrival: the socket and the clock.

Why: every load generator stamps a token when its greenlet gets round to reading it, so a
busy client adds its own scheduling delay to every TTFT and ITL it reports. The kernel stamps
each received TCP buffer when it arrives, independent of when user code runs.
:class:`TimestampingSocket` is a ``gevent.socket.socket`` whose ``recv``/``recv_into`` use
``recvmsg`` and remember, per socket, the last kernel stamp (already in the perf_counter
timebase, through :class:`ClockMap`), a read sequence number and what kind of stamp it is.
geventhttpclient reads responses with plain ``sock.recv(block_size)``, so every byte of a
response flows through our ``recv``.
"""

from __future__ import annotations

import socket as _stdsocket
import struct
import time
from collections.abc import Sequence
from errno import EWOULDBLOCK
from typing import Any

import gevent.socket
from gevent.timeout import Timeout

from locust_llm.timestamps.analysis import FALLBACK, FULL, KERNEL

__all__ = [
    "ANCILLARY_SPACE",
    "CLOCK",
    "SCM_TIMESTAMPNS",
    "SO_TIMESTAMPNS",
    "TOTALS",
    "ClockMap",
    "TimestampingSocket",
    "parse_timestamp_cmsgs",
    "timespec_to_ns",
]

# --- constants -------------------------------------------------------------------------

#: ``SO_TIMESTAMPNS`` (== ``SCM_TIMESTAMPNS``). Python 3.11 has no constant; 35 is
#: ``SO_TIMESTAMPNS_OLD`` from asm-generic, used by x86-64, arm64, riscv64, s390x. On 64-bit
#: kernels the "old" option already carries a 64-bit ``struct timespec``.
SO_TIMESTAMPNS: int = getattr(_stdsocket, "SO_TIMESTAMPNS", 35)
SCM_TIMESTAMPNS: int = getattr(_stdsocket, "SCM_TIMESTAMPNS", SO_TIMESTAMPNS)
_SOL_SOCKET: int = _stdsocket.SOL_SOCKET
#: ``struct timespec`` on a 64-bit Linux: two native longs (tv_sec, tv_nsec).
_TIMESPEC = struct.Struct("@qq")
#: Room for exactly one ``SCM_TIMESTAMPNS`` control message.
ANCILLARY_SPACE: int = (
    _stdsocket.CMSG_SPACE(_TIMESPEC.size) if hasattr(_stdsocket, "CMSG_SPACE") else 32
)

# --- pure helpers ----------------------------------------------------------------------


def timespec_to_ns(data: bytes) -> int:
    """Decode a ``struct timespec`` (64-bit tv_sec, tv_nsec) into integer nanoseconds.

    Integer ns because a CLOCK_REALTIME value in float seconds loses ~0.25 µs of precision.
    """
    sec, nsec = _TIMESPEC.unpack_from(data)
    return sec * 1_000_000_000 + nsec


def parse_timestamp_cmsgs(ancdata: Sequence[tuple[int, int, bytes]]) -> int | None:
    """Return the ``SCM_TIMESTAMPNS`` stamp (CLOCK_REALTIME ns) from ``recvmsg`` ancillary data.

    None when there is none (timestamping not yet enabled in the kernel, or a truncated
    control message), so the caller can fall back and count it.
    """
    for level, kind, data in ancdata:
        if level == _SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            return timespec_to_ns(data)
    return None


# --- clock conversion ------------------------------------------------------------------


class ClockMap:
    """Map CLOCK_REALTIME nanoseconds (kernel stamps) onto the ``perf_counter`` timebase.

    Why: kernel stamps are wall-clock, the rest of the client measures with perf_counter
    (CLOCK_MONOTONIC on Linux). The offset is taken from bracketed reads
    ``perf, real, perf``: the tightest bracket of ``samples`` tries bounds the error by half
    its width (~50 ns here). The offset is re-measured every ``recheck_interval`` seconds
    (and at once when a stamp lands in the future): NTP slewing drifts it slowly, a clock
    step moves it at once; a move larger than ``step_threshold_ns`` is counted in ``steps``.
    """

    __slots__ = (
        "_perf_ns",
        "_real_ns",
        "checks",
        "last_delta_ns",
        "next_check",
        "off_frac_ns",
        "off_sec",
        "offset_ns",
        "recheck_interval",
        "samples",
        "step_threshold_ns",
        "steps",
        "width_ns",
    )

    def __init__(
        self,
        samples: int = 32,
        recheck_interval: float = 1.0,
        step_threshold_ns: int = 1_000_000,
        real_ns: Any = time.time_ns,
        perf_ns: Any = time.perf_counter_ns,
    ) -> None:
        self.samples = samples
        self.recheck_interval = recheck_interval
        self.step_threshold_ns = step_threshold_ns
        self._real_ns = real_ns
        self._perf_ns = perf_ns
        self.steps = 0
        self.checks = 0
        self.last_delta_ns = 0
        self.offset_ns, self.width_ns = self.measure()
        self.off_sec, self.off_frac_ns = divmod(self.offset_ns, 1_000_000_000)
        self.next_check = self._perf_ns() / 1e9 + recheck_interval

    def measure(self) -> tuple[int, int]:
        """Return (perf − real offset in ns, bracket width in ns) from the tightest bracket."""
        perf, real = self._perf_ns, self._real_ns
        best_w = None
        best_off = 0
        for _ in range(self.samples):
            a = perf()
            r = real()
            b = perf()
            w = b - a
            if best_w is None or w < best_w:
                best_w = w
                best_off = (a + b) // 2 - r
        assert best_w is not None
        return best_off, best_w

    def recheck(self) -> int:
        """Re-measure the offset, adopt it, count a step if it moved; return the move in ns."""
        off, w = self.measure()
        delta = off - self.offset_ns
        self.checks += 1
        self.last_delta_ns = delta
        if abs(delta) > self.step_threshold_ns:
            self.steps += 1
        self.offset_ns, self.width_ns = off, w
        self.off_sec, self.off_frac_ns = divmod(off, 1_000_000_000)
        self.next_check = self._perf_ns() / 1e9 + self.recheck_interval
        return delta

    def to_perf(self, real_ns: int) -> float:
        """Convert a CLOCK_REALTIME ns value to perf_counter seconds."""
        return (real_ns + self.offset_ns) / 1e9

    def timespec_to_perf(self, sec: int, nsec: int) -> float:
        """Convert a ``struct timespec`` (CLOCK_REALTIME) to perf_counter seconds.

        Split into whole seconds and a fraction so that no large integer or float of
        ~1.7e18 is formed: this runs once per socket read.
        """
        return (sec + self.off_sec) + (nsec + self.off_frac_ns) * 1e-9


#: One map for the process: all sockets share it, the re-check costs ~3 µs once a second.
CLOCK = ClockMap()


# --- socket ----------------------------------------------------------------------------


class _Totals:
    """Process-wide counters of the rare read outcomes (fallbacks, full buffers)."""

    __slots__ = ("fallbacks", "full")

    def __init__(self) -> None:
        self.fallbacks = 0
        self.full = 0


TOTALS = _Totals()
_perf = time.perf_counter
_unpack = _TIMESPEC.unpack_from
_FUTURE_TOLERANCE = 0.0005  # s: a stamp later than now by more than this means a clock step


class TimestampingSocket(gevent.socket.socket):
    """A gevent TCP socket that keeps the kernel receive stamp of its last read.

    After every ``recv``/``recv_into`` that returned data:

    - ``ts_last``: arrival time in perf_counter seconds (kernel stamp, or perf_counter() at
      the end of the read when the read had no stamp);
    - ``ts_seq``: read sequence number (1, 2, ...): two lines with the same number came
      from one read, i.e. shared a stamp;
    - ``ts_kind``: :data:`KERNEL`, :data:`FULL` (stamp, but the read filled the buffer) or
      :data:`FALLBACK` (no stamp);

    Why a subclass rather than a wrapper: geventhttpclient and gevent's ``select`` take the
    socket object itself (fileno, timeouts, pool liveness checks), so it has to stay a
    gevent socket in every other respect.
    """

    __slots__ = (
        "_ts_timer",
        "ts_enabled",
        "ts_fallbacks",
        "ts_kind",
        "ts_last",
        "ts_sent",
        "ts_seq",
    )

    def __init__(
        self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
    ) -> None:
        super().__init__(family, type, proto, fileno)
        self.ts_last = 0.0
        self.ts_sent = 0.0  # perf_counter() just before the last sendall: the request's send
        self.ts_seq = 0
        self.ts_kind = FALLBACK
        self.ts_fallbacks = 0
        self._ts_timer: Timeout | None = None
        try:
            self._sock.setsockopt(_SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.ts_enabled = True
        except OSError:
            self.ts_enabled = False

    def _note(self, n: int, bufsize: int, anc: list[tuple[int, int, bytes]]) -> None:
        """Record the stamp of a read that returned n > 0 bytes (O(1), ~0.5 µs)."""
        now = _perf()
        self.ts_seq += 1
        clock = CLOCK
        if anc and n < bufsize and anc[0][1] == SCM_TIMESTAMPNS:  # the common case
            sec, nsec = _unpack(anc[0][2])
            t = (sec + clock.off_sec) + (nsec + clock.off_frac_ns) * 1e-9
            if t > now + _FUTURE_TOLERANCE:
                t = self._stepped(sec, nsec, now)
            self.ts_last = t
            self.ts_kind = KERNEL
        else:
            self._rare(n, bufsize, anc, now)
        if now >= clock.next_check:
            clock.recheck()

    def _stepped(self, sec: int, nsec: int, now: float) -> float:
        """A stamp in the future: the wall clock stepped forward. Re-measure, clamp."""
        CLOCK.recheck()
        t = CLOCK.timespec_to_perf(sec, nsec)
        return now if t > now else t

    def _rare(self, n: int, bufsize: int, anc: list[tuple[int, int, bytes]], now: float) -> None:
        """No stamp (fallback), or the read filled the buffer (FULL)."""
        real = parse_timestamp_cmsgs(anc)
        if real is None:
            self.ts_last = now
            self.ts_kind = FALLBACK
            self.ts_fallbacks += 1
            TOTALS.fallbacks += 1
            return
        sec, nsec = divmod(real, 1_000_000_000)
        t = CLOCK.timespec_to_perf(sec, nsec)
        if t > now + _FUTURE_TOLERANCE:
            t = self._stepped(sec, nsec, now)
        self.ts_last = t
        if n >= bufsize:
            self.ts_kind = FULL
            TOTALS.full += 1
        else:
            self.ts_kind = KERNEL

    def _wait_readable(self) -> None:
        """Wait for data as gevent's ``_wait`` does, raising ``socket.timeout`` after the
        socket's timeout, but with one timer per socket started and stopped around each
        wait: gevent builds and closes a new ``Timeout`` for every wait, and with one wait
        per token that was a tenth of the client's CPU on paced streams."""
        timeout = self.timeout
        event = self._read_event
        if timeout is None or event.callback is not None:
            self._wait(event)  # no timer, or gevent's own error for a second reader
            return
        timer = self._ts_timer
        if timer is None or timer.seconds != timeout:
            timer = self._ts_timer = Timeout(timeout, TimeoutError("timed out"))
        timer.start()
        try:
            self.hub.wait(event)
        except BaseException:
            # it fired (or the greenlet was killed): the hub is still inside the timer's
            # callback, so this timer is closed as gevent closes its own, and the next wait
            # gets a new one
            self._ts_timer = None
            timer.close()
            raise
        timer.cancel()

    @property
    def ts_reads(self) -> int:
        """Reads that returned data (== ``ts_seq``)."""
        return self.ts_seq

    def sendall(self, data: Any, flags: int = 0) -> None:  # type: ignore[override]
        """geventhttpclient sends each request with one ``sendall``: note when it started."""
        self.ts_sent = _perf()
        return super().sendall(data, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:  # type: ignore[override]
        """``recv`` through ``recvmsg`` so the kernel stamp comes along."""
        sock = self._sock
        while True:
            try:
                data, anc, _flags, _addr = sock.recvmsg(bufsize, ANCILLARY_SPACE, flags)
                break
            except OSError as ex:
                if ex.args[0] != EWOULDBLOCK or self.timeout == 0.0:
                    raise
            self._wait_readable()
        if data:
            self._note(len(data), bufsize, anc)
        return data

    def recv_ready(self, bufsize: int) -> bytes | None:
        """The bytes already received, with their stamp noted, or None when there are none
        yet (never waits: the body reader waits for readability itself)."""
        try:
            data, anc, _flags, _addr = self._sock.recvmsg(bufsize, ANCILLARY_SPACE)
        except BlockingIOError:
            return None
        if data:
            self._note(len(data), bufsize, anc)
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:  # type: ignore[override]
        """``recv_into`` through ``recvmsg_into`` (same bookkeeping as :meth:`recv`)."""
        view = memoryview(buffer).cast("B")
        if nbytes:
            view = view[:nbytes]
        size = len(view)
        sock = self._sock
        while True:
            try:
                n, anc, _flags, _addr = sock.recvmsg_into([view], ANCILLARY_SPACE, flags)
                break
            except OSError as ex:
                if ex.args[0] != EWOULDBLOCK or self.timeout == 0.0:
                    raise
            self._wait_readable()
        if n:
            self._note(n, size, anc)
        return n
