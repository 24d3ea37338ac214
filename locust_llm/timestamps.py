"""Kernel receive timestamps (``SO_TIMESTAMPNS``) for token arrival.

Why: every load generator stamps a token when its greenlet gets round to reading it, so a
busy client adds its own scheduling delay to every TTFT and ITL it reports. The kernel stamps
each received TCP buffer when it arrives, independent of when user code runs. This module
turns those stamps into ``time.perf_counter()`` seconds so that the stream loop can use them
in place of its own ``perf_counter()`` calls.

How it fits together (see ``docs`` in the issue 9 note and the report):

- :class:`TimestampingSocket` is a ``gevent.socket.socket`` whose ``recv``/``recv_into`` use
  ``recvmsg`` and remember, per socket, the last kernel stamp (already in the perf_counter
  timebase), a read sequence number and what kind of stamp it is. geventhttpclient reads
  responses with plain ``sock.recv(block_size)`` (``HTTPSocketResponse._read_headers``,
  ``readline``, ``read``), so every byte of a response flows through our ``recv``.
- :func:`enable_kernel_timestamps` makes a Locust ``FastHttpSession`` (or a geventhttpclient
  ``UserAgent``/``HTTPClientPool``/``HTTPClient``/``ConnectionPool``) create that socket by
  overriding ``ConnectionPool._create_tcp_socket`` on the pool instance: the one documented
  socket factory in geventhttpclient. It returns False (caller uses user-space stamps) on
  non-Linux, for HTTPS (reads happen inside OpenSSL), or when the option cannot be set.
- :meth:`StampReader.from_response` is taken before the body is read (the response drops its
  ``_sock`` at message end); :class:`TokenTimes` records one token in O(1) (a perf_counter
  call, three attribute reads and four list appends) and :meth:`TokenTimes.analyze` turns a
  finished request into token times, ITL gaps and client-health counts.

Shared reads. TCP reports the stamp of the last buffer a read consumed, and segments that
arrive while earlier data is unread are coalesced into the queued buffer, which takes the
newest stamp. So when one read delivers several tokens, all of them carry the stamp of the
last one: their individual arrival times are lost (no socket call recovers them). A token
"shared a read" when the next token was parsed from the same read (same ``read_seq``), or
when its read filled the whole receive buffer (more data was pending, so the stamp may be
that of a later, partially read token). The last token of a read has its own stamp.

ITL policy for shared reads (documented, not silent): a gap is *exact* when both of its
tokens have their own stamp; gaps touching a shared token are **excluded from the ITL
samples**, and counted (``itl_excluded``) and reported with the shared-token share, so a
reader sees how many gaps are missing. TTFT and E2E still use the token's stamp, which for
a shared token is an upper bound on its arrival (never earlier than the truth). Gaps that
touch a fallback token (a read without a stamp) are kept, at user-space quality, and the
fallbacks are counted.
"""

from __future__ import annotations

import math
import platform
import socket as _stdsocket
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from errno import EWOULDBLOCK
from typing import Any

import gevent.socket

__all__ = [
    "ANCILLARY_SPACE",
    "FALLBACK",
    "FULL",
    "KERNEL",
    "SCM_TIMESTAMPNS",
    "SO_TIMESTAMPNS",
    "ClockMap",
    "ClientHealth",
    "StampReader",
    "TimestampingSocket",
    "TokenAnalysis",
    "TokenTimes",
    "analyze_tokens",
    "client_bound",
    "enable_kernel_timestamps",
    "health_figures",
    "keep_timestamping_warm",
    "kernel_timestamps_supported",
    "parse_timestamp_cmsgs",
    "percentile",
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
#: Architectures where 35 is known to be SO_TIMESTAMPNS with a 64-bit timespec.
_KNOWN_ARCH = {"x86_64", "amd64", "aarch64", "arm64", "riscv64", "s390x"}

#: Stamp kinds, per read (``TimestampingSocket.ts_kind``) and per token.
FALLBACK = 0  #: the read carried no kernel stamp: the time is perf_counter() when recv returned
KERNEL = 1  #: kernel stamp of the last buffer the read consumed
FULL = 2  #: kernel stamp, but the read filled the buffer: more data was pending (shared)


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


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]; NaN when empty.

    Used for the client-health figures and the benchmark; not on a per-token path.
    """
    n = len(values)
    if n == 0:
        return math.nan
    s = sorted(values)
    pos = (n - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


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
    - ``ts_read_at``: perf_counter() when the read returned (read lateness = this − stamp).

    Why a subclass rather than a wrapper: geventhttpclient and gevent's ``select`` take the
    socket object itself (fileno, timeouts, pool liveness checks), so it has to stay a
    gevent socket in every other respect.
    """

    __slots__ = (
        "ts_enabled",
        "ts_fallbacks",
        "ts_kind",
        "ts_last",
        "ts_read_at",
        "ts_sent",
        "ts_seq",
    )

    def __init__(
        self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None
    ) -> None:
        super().__init__(family, type, proto, fileno)
        self.ts_last = 0.0
        self.ts_read_at = 0.0
        self.ts_sent = 0.0  # perf_counter() just before the last sendall: the request's send
        self.ts_seq = 0
        self.ts_kind = FALLBACK
        self.ts_fallbacks = 0
        try:
            self._sock.setsockopt(_SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.ts_enabled = True
        except OSError:
            self.ts_enabled = False

    def _note(self, n: int, bufsize: int, anc: list[tuple[int, int, bytes]]) -> None:
        """Record the stamp of a read that returned n > 0 bytes (O(1), ~0.5 µs)."""
        now = _perf()
        self.ts_read_at = now
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
            self._wait(self._read_event)
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
            self._wait(self._read_event)
        if n:
            self._note(n, size, anc)
        return n


# --- support, warm-up, installer -------------------------------------------------------

_SUPPORTED: bool | None = None
_WARM: _stdsocket.socket | None = None


def kernel_timestamps_supported() -> bool:
    """True on Linux (64-bit, known arch) when a TCP socket accepts ``SO_TIMESTAMPNS``.

    Cached after the first call; a failed probe means user-space stamps.
    """
    global _SUPPORTED
    if _SUPPORTED is None:
        _SUPPORTED = _probe()
    return _SUPPORTED


def _probe() -> bool:
    if not sys.platform.startswith("linux") or not hasattr(_stdsocket.socket, "recvmsg"):
        return False
    if not hasattr(_stdsocket, "SO_TIMESTAMPNS") and platform.machine().lower() not in _KNOWN_ARCH:
        return False
    if struct.calcsize("l") != 8:
        return False
    try:
        s = _stdsocket.socket(_stdsocket.AF_INET, _stdsocket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.setsockopt(_SOL_SOCKET, SO_TIMESTAMPNS, 1)
        return s.getsockopt(_SOL_SOCKET, SO_TIMESTAMPNS) != 0
    except OSError:
        return False
    finally:
        s.close()


def keep_timestamping_warm() -> bool:
    """Hold one timestamping socket open for the life of the process.

    Why: the kernel turns receive timestamping on lazily, the first time any socket asks,
    and turns it off when the last one closes; the first buffers after that may arrive
    without a stamp. One socket kept open from start-up keeps it on between requests and
    connections. Idempotent; False when unsupported.
    """
    global _WARM
    if _WARM is not None:
        return True
    if not kernel_timestamps_supported():
        return False
    try:
        s = _stdsocket.socket(_stdsocket.AF_INET, _stdsocket.SOCK_DGRAM)
        s.setsockopt(_SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    _WARM = s
    return True


def _create_tcp_socket(family: int, socktype: int, protocol: int) -> TimestampingSocket:
    """Replacement for ``ConnectionPool._create_tcp_socket`` (set on the pool instance)."""
    return TimestampingSocket(family, socktype, protocol)


def _install_on_connection_pool(pool: Any) -> bool:
    """Make a plain-HTTP geventhttpclient ``ConnectionPool`` create timestamping sockets."""
    from geventhttpclient.connectionpool import SSLConnectionPool

    if isinstance(pool, SSLConnectionPool):
        return False  # the TLS layer reads through OpenSSL: no stamps there
    pool._create_tcp_socket = _create_tcp_socket
    return True


def _install_on_client(client: Any) -> bool:
    if getattr(client, "ssl", False):
        return False
    return _install_on_connection_pool(client._connection_pool)


def _install_on_client_pool(cpool: Any) -> None:
    """Patch existing clients and wrap ``get_client`` so later ones are patched too."""
    for client in list(cpool.clients.values()):
        _install_on_client(client)
    if getattr(cpool, "_llm_timestamps", False):
        return
    original = cpool.get_client

    def get_client(url: Any) -> Any:
        known = len(cpool.clients)
        client = original(url)
        if len(cpool.clients) != known:
            _install_on_client(client)
        return client

    cpool.get_client = get_client
    cpool._llm_timestamps = True


def enable_kernel_timestamps(target: Any, base_url: str | None = None) -> bool:
    """Make ``target``'s new connections stamp token arrival in the kernel.

    ``target`` is a Locust ``FastHttpSession`` (``user.client``), a geventhttpclient
    ``UserAgent``, ``HTTPClientPool``, ``HTTPClient`` or ``ConnectionPool``. Connections
    opened afterwards are :class:`TimestampingSocket`; open ones keep user-space stamps
    (call this in ``on_start``, before the first request). Returns False, changing nothing,
    when unsupported: not Linux, the option fails, or the base URL is HTTPS. Also calls
    :func:`keep_timestamping_warm`.
    """
    if not kernel_timestamps_supported():
        return False
    from geventhttpclient.client import HTTPClient, HTTPClientPool
    from geventhttpclient.connectionpool import ConnectionPool
    from geventhttpclient.useragent import UserAgent

    if base_url is None:
        base_url = getattr(target, "base_url", None)
    if base_url and base_url.lower().startswith("https:"):
        return False
    inner = getattr(target, "client", None)
    if isinstance(inner, UserAgent):  # FastHttpSession
        target = inner
    if isinstance(target, UserAgent):
        target = target.clientpool
    if isinstance(target, HTTPClientPool):
        if base_url:
            from geventhttpclient.url import URL

            if not _install_on_client(target.get_client(URL(base_url))):
                return False
        _install_on_client_pool(target)
        ok = True
    elif isinstance(target, HTTPClient):
        ok = _install_on_client(target)
    elif isinstance(target, ConnectionPool):
        ok = _install_on_connection_pool(target)
    else:
        raise TypeError(f"cannot install kernel timestamps on {type(target).__name__}")
    if ok:
        keep_timestamping_warm()
    return ok


# --- per-request reading ---------------------------------------------------------------


class StampReader:
    """Read access to the stamp of the socket that carries one response.

    Take it with :meth:`from_response` right after the request returns and BEFORE reading
    the body: geventhttpclient drops ``response._sock`` when the message completes.
    """

    __slots__ = ("sock",)

    def __init__(self, sock: TimestampingSocket) -> None:
        self.sock = sock

    @classmethod
    def from_response(cls, response: Any) -> StampReader | None:
        """Reader for a Locust ``FastResponse``/``ResponseContextManager``, its ``.stream``,
        or a geventhttpclient ``HTTPSocketResponse``; None when the response is not read
        through a :class:`TimestampingSocket` (HTTPS, not installed, or already complete).
        """
        ghc = getattr(response, "_response", response)
        sock = getattr(ghc, "_sock", None)
        if isinstance(sock, TimestampingSocket) and sock.ts_enabled:
            return cls(sock)
        return None

    def last(self) -> tuple[float, int, int]:
        """(arrival in perf_counter s, read_seq, kind) of the socket's last read. O(1)."""
        s = self.sock
        return s.ts_last, s.ts_seq, s.ts_kind


class TokenTimes:
    """Per-request token recorder for the stream loop; O(1) per token.

    Call :meth:`mark` right after the ``readline`` that completed a token chunk's line. In
    user mode (``reader`` None) it records ``perf_counter()`` only.
    """

    __slots__ = ("kind", "reader", "seq", "stamp", "user")

    def __init__(self, reader: StampReader | None) -> None:
        self.reader = reader
        self.user: list[float] = []
        self.stamp: list[float] = []
        self.seq: list[int] = []
        self.kind: list[int] = []

    def mark(self) -> float:
        """Record one token; return its best arrival time (perf_counter seconds)."""
        now = _perf()
        self.user.append(now)
        reader = self.reader
        if reader is None:
            return now
        s = reader.sock
        seq = s.ts_seq
        if seq == 0:  # nothing read through this socket yet: cannot happen after headers
            t, kind = now, FALLBACK
        else:
            t, kind = s.ts_last, s.ts_kind
        self.stamp.append(t)
        self.seq.append(seq)
        self.kind.append(kind)
        return t

    def analyze(self) -> TokenAnalysis:
        """Token times, exact ITL gaps and health counts for the finished request."""
        if self.reader is None:
            return analyze_tokens(self.user)
        return analyze_tokens(self.user, self.stamp, self.seq, self.kind)


@dataclass
class TokenAnalysis:
    """One request's tokens after shared-read detection (times in perf_counter seconds).

    ``times``: the best arrival time of every token (kernel stamp, else user time);
    ``itl``: gaps in seconds kept for ITL percentiles; ``itl_excluded``: gaps dropped
    because a token of the pair shared a read; ``shared``: tokens that shared a read;
    ``fallbacks``: tokens whose read had no stamp; ``own``: tokens with their own kernel
    stamp; ``lateness``: parse time − kernel stamp (s) for kernel-stamped tokens;
    ``first_shared``: token 0 shared a read with token 1 (counted in ``shared`` too).

    Why ``first_shared`` apart: vLLM emits the role-only chunk and the first content chunk
    back to back (the emulator in one send), so they often arrive in one read even when the
    client keeps up. That is not evidence of a late reader, so the client-bound verdict
    leaves it out (:class:`ClientHealth`), while the gap itself is still excluded from ITL.
    """

    mode: str
    times: list[float]
    itl: list[float]
    itl_excluded: int = 0
    shared: int = 0
    fallbacks: int = 0
    own: int = 0
    lateness: list[float] = field(default_factory=list)
    shared_flags: list[bool] = field(default_factory=list)
    first_shared: bool = False

    @property
    def tokens(self) -> int:
        return len(self.times)


def analyze_tokens(
    user: Sequence[float],
    stamp: Sequence[float] | None = None,
    seq: Sequence[int] | None = None,
    kind: Sequence[int] | None = None,
) -> TokenAnalysis:
    """Pure: classify tokens and build the ITL samples (O(n) once per request).

    Token i shared a read when ``seq[i] == seq[i+1]`` or its read filled the buffer
    (``kind[i] == FULL``). A gap (i, i+1) enters ``itl`` unless token i or i+1 shared a
    read; then it is counted in ``itl_excluded``. With no stamps (user mode) every gap is
    kept and the health counts stay zero.
    """
    n = len(user)
    if stamp is None or seq is None or kind is None:
        times = list(user)
        return TokenAnalysis("user", times, [times[i + 1] - times[i] for i in range(n - 1)])
    shared = [False] * n
    for i in range(n):
        if kind[i] == FULL or (i + 1 < n and seq[i] == seq[i + 1]):
            shared[i] = True
    times = list(stamp)
    itl: list[float] = []
    excluded = 0
    for i in range(n - 1):
        if shared[i] or shared[i + 1]:
            excluded += 1
        else:
            itl.append(times[i + 1] - times[i])
    fallbacks = 0
    own = 0
    lateness: list[float] = []
    for i in range(n):
        if kind[i] == FALLBACK:
            fallbacks += 1
        else:
            lateness.append(user[i] - stamp[i])
            if not shared[i]:
                own += 1
    return TokenAnalysis(
        "kernel",
        times,
        itl,
        itl_excluded=excluded,
        shared=sum(shared),
        fallbacks=fallbacks,
        own=own,
        lateness=lateness,
        shared_flags=shared,
        first_shared=n > 1 and shared[0],
    )


# --- client health ---------------------------------------------------------------------

CLIENT_BOUND_REMEDY = (
    "the load generator is CPU-bound: it reads tokens late enough that several arrive in one "
    "read (their separate arrival times are lost) or later than a typical inter-token gap. "
    "Spread the users over more Locust processes (`--processes N`, or more workers) or run "
    "fewer users per worker."
)


def health_figures(
    tokens: int,
    own: int,
    shared: int,
    fallbacks: int,
    lateness_s: Sequence[float],
    itl_excluded: int = 0,
) -> dict[str, float | int]:
    """Client-health figures from per-token counts (pure).

    ``own_stamp_share``/``shared_share`` are fractions of all tokens; read lateness is
    parse time − kernel stamp, in ms: how far behind the network the client ran.
    """
    share = (lambda k: k / tokens) if tokens else (lambda k: math.nan)
    lat_ms = [x * 1000.0 for x in lateness_s]
    return {
        "tokens": tokens,
        "own_stamp_share": share(own),
        "shared_share": share(shared),
        "shared_tokens": shared,
        "fallbacks": fallbacks,
        "itl_excluded": itl_excluded,
        "read_lateness_p50_ms": percentile(lat_ms, 50),
        "read_lateness_p99_ms": percentile(lat_ms, 99),
        "read_lateness_max_ms": max(lat_ms) if lat_ms else math.nan,
    }


def client_bound(
    shared_share: float,
    lateness_p99_ms: float,
    itl_p50_ms: float,
    shared_limit: float = 0.01,
) -> tuple[bool, str]:
    """Verdict: client-bound when shared share > 1 % or lateness p99 > ITL p50.

    Returns (flag, message); the message names the trigger and the remedy, or is empty.
    """
    reasons = []
    if shared_share == shared_share and shared_share > shared_limit:
        reasons.append(f"{shared_share:.1%} of tokens shared a read (limit {shared_limit:.0%})")
    if (
        lateness_p99_ms == lateness_p99_ms
        and itl_p50_ms == itl_p50_ms
        and lateness_p99_ms > itl_p50_ms
    ):
        reasons.append(f"read lateness p99 {lateness_p99_ms:.2f} ms > ITL p50 {itl_p50_ms:.2f} ms")
    if not reasons:
        return False, ""
    return True, "client-bound: " + "; ".join(reasons) + ". " + CLIENT_BOUND_REMEDY


class ClientHealth:
    """Accumulates :class:`TokenAnalysis` counts over requests (lateness kept as a list).

    The plugin may feed lateness into its own mergeable sketch instead; the counts merge by
    addition across workers.
    """

    __slots__ = ("fallbacks", "first_shared", "itl_excluded", "lateness", "own", "shared", "tokens")

    def __init__(self) -> None:
        self.first_shared = 0
        self.tokens = 0
        self.own = 0
        self.shared = 0
        self.fallbacks = 0
        self.itl_excluded = 0
        self.lateness: list[float] = []

    def add(self, a: TokenAnalysis) -> None:
        """Add one finished request."""
        self.tokens += a.tokens
        self.own += a.own
        self.shared += a.shared
        self.fallbacks += a.fallbacks
        self.itl_excluded += a.itl_excluded
        self.first_shared += a.first_shared
        self.lateness.extend(a.lateness)

    def figures(self) -> dict[str, float | int]:
        """:func:`health_figures` over everything added, plus ``first_shared`` and
        ``late_shared_share`` (shared tokens other than a request's first, over all tokens:
        the share the client-bound verdict should use)."""
        f = health_figures(
            self.tokens, self.own, self.shared, self.fallbacks, self.lateness, self.itl_excluded
        )
        f["first_shared"] = self.first_shared
        f["late_shared_share"] = (
            (self.shared - self.first_shared) / self.tokens if self.tokens else math.nan
        )
        return f
