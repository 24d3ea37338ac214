"""A mergeable relative-error histogram (the DDSketch idea) for latency percentiles.

Why not Locust's own numbers: Locust rounds response times (1 ms steps below 100 ms, 10 ms below
1 s), and shipping raw samples from workers costs megabytes per report. This sketch keeps
log-spaced buckets: each order statistic it returns is within ``rel_error`` (default 1 %) of
the real sample at that rank, and a quantile between two ranks is interpolated as numpy does, its size depends on the value range only (≈ 1 100 buckets cover 1 µs to
3 hours at 1 %), and two sketches merge exactly by adding counts — so a run's percentiles are
the same whether its samples were collected in one process or in twenty.

Count, sum, sum of squares, min and max are exact, so mean and (population) standard deviation
match numpy's ``mean``/``std`` as ``vllm bench serve`` computes them. The sums are kept as
integers in units of 2**-64 (exact for every sample above ~1e-4 of the caller's unit, off by
< 6e-20 below): float sums would depend on the order samples were added and merged, and
``E[x²] − E[x]²`` in floats cancels catastrophically for a large mean with a small spread.
"""

from __future__ import annotations

import math
from operator import mul as _mul
from typing import Any

__all__ = ["LogHistogram"]

_MIN_VALUE = 1e-6  # values at or below this (in the caller's unit) land in the zero bucket
_FIX = float(1 << 64)  # fixed-point scale of the exact sums


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's ``_lerp``: the same float operations, so equal inputs give equal bits."""
    d = b - a
    return b - d * (1 - t) if t >= 0.5 else a + d * t


class LogHistogram:
    __slots__ = ("rel_error", "_gamma_ln", "_bins", "zero", "count", "_s", "_ss", "min", "max")

    def __init__(self, rel_error: float = 0.01) -> None:
        if not 0 < rel_error < 1:
            raise ValueError("rel_error must be in (0, 1)")
        self.rel_error = rel_error
        self._gamma_ln = math.log((1 + rel_error) / (1 - rel_error))
        self._bins: dict[int, int] = {}
        self.zero = 0
        self.count = 0
        self._s = 0  # sum of samples, exact, in units of 2**-64
        self._ss = 0  # sum of squares, exact, in units of 2**-128
        self.min = math.inf
        self.max = -math.inf

    def add(self, value: float) -> None:
        """Record one sample. Negative values are clamped to zero (clock noise, not data).

        NaN and infinities raise (ValueError/OverflowError) and leave the sketch unchanged.
        """
        q = int(value * _FIX)
        self.count += 1
        self._s += q
        self._ss += q * q
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if value <= _MIN_VALUE:
            self.zero += 1
            return
        key = math.ceil(math.log(value) / self._gamma_ln)
        bins = self._bins
        bins[key] = bins.get(key, 0) + 1

    def add_many(self, values: list[float]) -> None:
        """``add`` for each value, in one pass (the collector's per-token ITL path)."""
        if not values:
            return
        qs = [int(v * _FIX) for v in values]  # raises on NaN/inf before anything changes
        self._s += sum(qs)
        self._ss += sum(map(_mul, qs, qs))
        self.count += len(qs)
        lo, hi = min(values), max(values)
        if lo < self.min:
            self.min = lo
        if hi > self.max:
            self.max = hi
        bins = self._bins
        gl = self._gamma_ln
        log, ceil = math.log, math.ceil
        zero = 0
        for v in values:
            if v <= _MIN_VALUE:
                zero += 1
            else:
                key = ceil(log(v) / gl)
                bins[key] = bins.get(key, 0) + 1
        self.zero += zero

    def merge(self, other: LogHistogram) -> None:
        if other.rel_error != self.rel_error:
            raise ValueError("cannot merge histograms with different rel_error")
        bins = self._bins
        for k, c in other._bins.items():
            bins[k] = bins.get(k, 0) + c
        self.zero += other.zero
        self.count += other.count
        self._s += other._s
        self._ss += other._ss
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def __len__(self) -> int:
        return self.count

    @property
    def sum(self) -> float:
        return self._s / (1 << 64)

    @property
    def sumsq(self) -> float:
        return self._ss / (1 << 128)

    @property
    def mean(self) -> float:
        return self._s / (self.count << 64) if self.count else 0.0

    @property
    def std(self) -> float:
        """Population standard deviation (numpy's default, as vLLM reports it)."""
        n = self.count
        if not n:
            return 0.0
        num = n * self._ss - self._s * self._s  # n² · variance, exact and never negative
        try:
            return math.sqrt(num / (n * n)) / _FIX
        except OverflowError:
            return math.isqrt(num // (n * n)) / _FIX

    def _value(self, key: int) -> float:
        # the point of bucket (gamma^(k-1), gamma^k] whose relative error to both ends is equal
        g = math.exp(self._gamma_ln)
        return 2 * math.exp(key * self._gamma_ln) / (g + 1)

    def quantile(self, q: float) -> float:
        """Value at quantile ``q`` in [0, 1], interpolated like ``np.quantile(method="linear")``."""
        return self.quantiles([q])[0]

    def _order_stats(self, ranks: list[int]) -> list[float]:
        """Approximate values of the order statistics at ascending integer ``ranks``: the
        bucket representative (within ``rel_error`` of the true sample), exact at the ends."""
        out = []
        keys = iter(sorted(self._bins))
        seen = self.zero
        key = None
        last = self.count - 1
        for r in ranks:
            if r <= 0:
                out.append(self.min)
            elif r >= last:
                out.append(self.max)
            elif r < self.zero:
                out.append(0.0 if self.min <= _MIN_VALUE else self.min)
            else:
                while seen <= r:
                    key = next(keys)
                    seen += self._bins[key]
                v = self._value(key)  # type: ignore[arg-type]
                out.append(min(max(v, self.min), self.max))
        return out

    def quantiles(self, qs: list[float]) -> list[float]:
        """Several quantiles in one pass, each interpolated between its two neighbouring ranks
        at ``q·(n−1)`` as numpy's default (linear) method does; since both neighbours are
        within ``rel_error`` of the true samples, so is the interpolated value."""
        if not self.count:
            return [0.0 for _ in qs]
        n = self.count
        virt = [min(max(q, 0.0), 1.0) * (n - 1) for q in qs]
        ranks = sorted({r for v in virt for r in (math.floor(v), min(math.floor(v) + 1, n - 1))})
        vals = dict(zip(ranks, self._order_stats(ranks), strict=True))
        out = []
        for v in virt:
            lo = math.floor(v)
            a, b = vals[lo], vals[min(lo + 1, n - 1)]
            out.append(_lerp(a, b, v - lo))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Compact, JSON/msgpack-safe form (keys as parallel lists, no int-keyed maps)."""
        keys = sorted(self._bins)
        return {
            "a": self.rel_error,
            "k": keys,
            "c": [self._bins[k] for k in keys],
            "z": self.zero,
            "n": self.count,
            "s": self.sum,
            "ss": self.sumsq,
            "S": str(self._s),  # exact sums; big integers travel as strings (msgpack, orjson)
            "SS": str(self._ss),
            "lo": self.min if self.count else None,
            "hi": self.max if self.count else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LogHistogram:
        h = cls(d["a"])
        h._bins = dict(zip(d["k"], d["c"], strict=True))
        h.zero = d["z"]
        h.count = d["n"]
        if "S" in d:
            h._s = int(d["S"])
            h._ss = int(d["SS"])
        else:  # written before the sums were exact
            h._s = int(d["s"] * _FIX)
            h._ss = int(d["ss"] * _FIX * _FIX)
        h.min = d["lo"] if d["lo"] is not None else math.inf
        h.max = d["hi"] if d["hi"] is not None else -math.inf
        return h

    def buckets(self) -> list[tuple[float, int]]:
        """(upper bound, count) per non-empty bucket, ascending: for Prometheus/CDF output."""
        out = [(_MIN_VALUE, self.zero)] if self.zero else []
        out += [(math.exp(k * self._gamma_ln), self._bins[k]) for k in sorted(self._bins)]
        return out
