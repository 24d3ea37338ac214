"""Token-stamp helpers for the benchmarks and tests: a per-token recorder over a socket, and
client-health figures summed over requests. The load path has its own (``locust_llm.stream``)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from locust_llm.timestamps import FALLBACK, StampLog, StampReader, TokenAnalysis, analyze_tokens

__all__ = ["ClientHealth", "TokenTimes", "health_figures", "percentile"]

_perf = time.perf_counter


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]; NaN when empty."""
    n = len(values)
    if n == 0:
        return math.nan
    s = sorted(values)
    pos = (n - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


class TokenTimes:
    """Call :meth:`mark` right after the ``readline`` that completed a token's line; with no
    reader (user-space mode) it records ``perf_counter()`` only."""

    def __init__(self, reader: StampReader | None) -> None:
        self.reader = reader
        self.log = StampLog()

    @property
    def user(self) -> list[float]:
        return self.log.user

    def mark(self) -> float:
        """Record one token; return its best arrival time (perf_counter seconds)."""
        now = _perf()
        if self.reader is None:
            self.log.user.append(now)
            return now
        s = self.reader.sock
        if s.ts_seq == 0:  # nothing read through this socket yet
            self.log.add(now, now, 0, FALLBACK)
            return now
        self.log.add(now, s.ts_last, s.ts_seq, s.ts_kind)
        return s.ts_last

    def analyze(self) -> TokenAnalysis:
        if self.reader is None:
            return analyze_tokens(self.log.user)
        return self.log.analyze()


def health_figures(
    tokens: int, own: int, shared: int, fallbacks: int, lateness_s: Sequence[float]
) -> dict[str, float | int]:
    """Shares of all tokens, and read lateness (parse time − kernel stamp, per read) in ms."""
    share = (lambda k: k / tokens) if tokens else (lambda k: math.nan)
    lat_ms = [x * 1000.0 for x in lateness_s]
    return {
        "tokens": tokens,
        "own_stamp_share": share(own),
        "shared_share": share(shared),
        "shared_tokens": shared,
        "fallbacks": fallbacks,
        "read_lateness_p50_ms": percentile(lat_ms, 50),
        "read_lateness_p99_ms": percentile(lat_ms, 99),
        "read_lateness_max_ms": max(lat_ms) if lat_ms else math.nan,
    }


class ClientHealth:
    """Sums :class:`TokenAnalysis` counts over requests."""

    def __init__(self) -> None:
        self.tokens = self.own = self.shared = self.fallbacks = 0
        self.first_shared = self.itl_excluded = 0
        self.lateness: list[float] = []

    def add(self, a: TokenAnalysis) -> None:
        self.tokens += a.tokens
        self.own += a.own
        self.shared += a.shared
        self.fallbacks += a.fallbacks
        self.itl_excluded += max(a.tokens - 1, 0) - len(a.itl)
        self.first_shared += bool(a.shared_flags and a.shared_flags[0])
        self.lateness.extend(a.read_lateness)

    def figures(self) -> dict[str, float | int]:
        """:func:`health_figures`, plus ``first_shared``, ``itl_excluded`` and
        ``late_shared_share`` (shared tokens other than a request's first, over all tokens)."""
        f = health_figures(self.tokens, self.own, self.shared, self.fallbacks, self.lateness)
        f["itl_excluded"] = self.itl_excluded
        f["first_shared"] = self.first_shared
        f["late_shared_share"] = (
            (self.shared - self.first_shared) / self.tokens if self.tokens else math.nan
        )
        return f
