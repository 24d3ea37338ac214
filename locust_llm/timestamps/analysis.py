"""What one request's token stamps say: best arrival times, exact ITL gaps, shared reads.

Pure (no sockets, no gevent): the stream loop records, per token, the time it parsed the
token and the stamp, read number and stamp kind of the socket read that completed it; this
module turns those four lists into the request's figures once the stream has ended.

Shared reads. TCP reports the stamp of the last buffer a read consumed, and segments that
arrive while earlier data is unread are coalesced into the queued buffer, which takes the
newest stamp. So when one read delivers several tokens, all of them carry the stamp of the
last one: their individual arrival times are lost (no socket call recovers them). A token
"shared a read" when the next token was parsed from the same read (same ``seq``), or when
its read filled the whole receive buffer (more data was pending, so the stamp may be that of
a later, partially read token). The last token of a read has its own stamp.

ITL policy for shared reads (documented, not silent): a gap is *exact* when both of its
tokens have their own stamp; gaps touching a shared token are **excluded from the ITL
samples** (the summary counts them as ``itl_excluded``). TTFT and E2E still use the token's
stamp, which for a shared token is an upper bound on its arrival (never earlier than the
truth). Gaps that touch a fallback token (a read without a stamp) are kept, at user-space
quality, and the fallbacks are counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["FALLBACK", "FULL", "KERNEL", "StampLog", "TokenAnalysis", "analyze_tokens"]

#: Stamp kinds, per read (``TimestampingSocket.ts_kind``) and per token.
FALLBACK = 0  #: the read carried no kernel stamp: the time is perf_counter() when recv returned
KERNEL = 1  #: kernel stamp of the last buffer the read consumed
FULL = 2  #: kernel stamp, but the read filled the buffer: more data was pending (shared)


class StampLog:
    """Per-request token stamps, recorded in O(1) per token (four list appends).

    ``user``: when the client parsed the token; ``stamp``, ``seq``, ``kind``: the arrival
    time, read number and stamp kind of the read that completed the token's line.
    """

    __slots__ = ("kind", "seq", "stamp", "user")

    def __init__(self) -> None:
        self.user: list[float] = []
        self.stamp: list[float] = []
        self.seq: list[int] = []
        self.kind: list[int] = []

    def add(self, user: float, stamp: float, seq: int, kind: int) -> None:
        """Record one token (perf_counter seconds)."""
        self.user.append(user)
        self.stamp.append(stamp)
        self.seq.append(seq)
        self.kind.append(kind)

    def analyze(self) -> TokenAnalysis:
        """The request's figures from everything recorded."""
        return analyze_tokens(self.user, self.stamp, self.seq, self.kind)


@dataclass
class TokenAnalysis:
    """One request's tokens after shared-read detection (times in perf_counter seconds).

    ``times``: the best arrival time of every token (kernel stamp, else user time);
    ``itl``: gaps kept for ITL percentiles; ``shared``: tokens that shared a read;
    ``fallbacks``: tokens whose read had no stamp; ``own``: tokens with their own kernel
    stamp; ``read_lateness``: parse time − kernel stamp (s), one sample per stamped read
    (its first token), so a read that carried 50 tokens weighs once, not 50 times.
    """

    mode: str
    times: list[float]
    itl: list[float]
    shared: int = 0
    fallbacks: int = 0
    own: int = 0
    read_lateness: list[float] = field(default_factory=list)
    shared_flags: list[bool] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return len(self.times)


def analyze_tokens(
    user: Sequence[float],
    stamp: Sequence[float] | None = None,
    seq: Sequence[int] | None = None,
    kind: Sequence[int] | None = None,
    end_seq: int | None = None,
) -> TokenAnalysis:
    """Classify tokens and build the ITL samples (O(n) once per request).

    Token i shared a read when ``seq[i] == seq[i+1]`` or its read filled the buffer
    (``kind[i] == FULL``); the last token also when its read was ``end_seq``, the one that
    carried the stream's end (a read's stamp is its last segment's arrival: the usage chunk
    and ``[DONE]`` the server wrote after the token). A gap (i, i+1) enters ``itl`` unless token i or i+1 shared a
    read. With no stamps (user mode) every gap is kept and the health counts stay zero.
    """
    n = len(user)
    if stamp is None or seq is None or kind is None:
        times = list(user)
        return TokenAnalysis("user", times, [times[i + 1] - times[i] for i in range(n - 1)])
    shared = [k == FULL or a == b for k, a, b in zip(kind, seq, seq[1:])]
    if n:
        shared.append(kind[n - 1] == FULL or seq[n - 1] == end_seq)
    times = list(stamp)
    itl = [
        t1 - t0 for t0, t1, s0, s1 in zip(times, times[1:], shared, shared[1:]) if not (s0 or s1)
    ]
    fallbacks = 0
    own = 0
    lateness: list[float] = []
    prev = -1
    for i in range(n):
        if kind[i] == FALLBACK:
            fallbacks += 1
        else:
            if seq[i] != prev:
                lateness.append(user[i] - stamp[i])
            if not shared[i]:
                own += 1
        prev = seq[i]
    return TokenAnalysis(
        "kernel",
        times,
        itl,
        shared=sum(shared),
        fallbacks=fallbacks,
        own=own,
        read_lateness=lateness,
        shared_flags=shared,
    )
