"""Over-saturation: does queueing grow without bound while the offered load stays the same?

A server past its capacity under an open-loop load (requests arrive whatever the server does)
builds a queue that only grows: requests in flight, client queue time and TTFT climb for as
long as the run lasts, and every figure measured then depends on the run's length rather than
on the server. A sweep or search learns nothing more by pushing further.

The test, applied to each per-second series (``in_flight``, ``ttft_p50_ms``) over a sliding window of ``window`` seconds after the load is fully spawned:

1. Mann-Kendall trend test (normal approximation with the tie correction): one-sided
   p-value of an increasing trend below ``alpha`` (0.001 by default), and
2. the Theil-Sen slope (median of pairwise slopes, robust to outlier seconds) times the
   window length is at least ``min_growth`` (0.5) of the series' level in the window, and
   at least the series' floor (50 ms for times, 2 requests for in-flight): a statistically
   certain but small drift is not a queue that grows without bound.

Both must hold in ``persist`` (5) consecutive windows; the first of them marks the run
saturated.  A healthy run (load below capacity) has a flat series: Mann-Kendall on noise gives
p ~ U(0, 1) per window, and noisy seconds can fake one steep window, but not five in a row
(200 simulated 60 s runs with lognormal noise of sigma 0.4 raise no alarm; one window alone
raised 5).
A closed loop (fixed users, each waiting for its answer) cannot queue without bound: in-flight
is capped by the user count and TTFT settles, so this fires only when load is truly open-ended.
Pure: series in, verdict out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ALPHA = 0.001
MIN_GROWTH = 0.5
WINDOW_S = 15
MIN_POINTS = 10
PERSIST = 5
# series name in the summary's intervals -> smallest growth over a window that counts
SERIES_FLOOR = {"in_flight": 2.0, "ttft_p50_ms": 50.0}
TEST = (
    "Mann-Kendall increasing trend p<{alpha:g} and Theil-Sen growth over the window "
    ">= {growth:.0%} of its median, per-second series, window {window:g}s"
)


@dataclass(frozen=True)
class Verdict:
    """What `detect` concluded; `to_json` is the summary's `saturation` field."""

    detected: bool
    test: str
    window_s: float
    series: str | None = None
    at_s: float | None = None  # seconds after the first interval considered
    at_t: float | None = None  # epoch second of the window's end
    slope_per_s: float | None = None
    growth: float | None = None  # Theil-Sen growth over the window / the window's median
    p_value: float | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def mann_kendall_p(y: Sequence[float]) -> float:
    """One-sided p-value of an increasing monotonic trend in `y` (in time order)."""
    x = np.asarray(y, dtype=float)
    n = len(x)
    if n < 3:
        return 1.0
    diff = np.sign(x[None, :] - x[:, None])
    s = float(np.triu(diff, 1).sum())
    _, counts = np.unique(x, return_counts=True)
    ties = sum(c * (c - 1) * (2 * c + 5) for c in counts if c > 1)
    var = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    if var <= 0:
        return 1.0
    z = (s - 1) / math.sqrt(var) if s > 0 else (s + 1) / math.sqrt(var) if s < 0 else 0.0
    return 0.5 * math.erfc(z / math.sqrt(2))


def theil_sen_slope(t: Sequence[float], y: Sequence[float]) -> float:
    """Median of the slopes between every pair of points with distinct t."""
    tt = np.asarray(t, dtype=float)
    yy = np.asarray(y, dtype=float)
    i, j = np.triu_indices(len(tt), 1)
    dt = tt[j] - tt[i]
    ok = dt != 0
    if not ok.any():
        return 0.0
    return float(np.median((yy[j] - yy[i])[ok] / dt[ok]))


def _series(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    ts, ys = [], []
    for r in rows:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            if key != "in_flight" and not r.get("requests"):
                continue  # no request started that second: no latency sample, not a zero
            ts.append(float(r["t"]))
            ys.append(float(v))
    return ts, ys


def detect(
    rows: Sequence[dict[str, Any]],
    *,
    start_after: float | None = None,
    end_before: float | None = None,
    window: float = WINDOW_S,
    alpha: float = ALPHA,
    min_growth: float = MIN_GROWTH,
    persist: int = PERSIST,
) -> Verdict:
    """Saturation verdict over per-second interval rows (``t`` epoch second + series).

    `start_after`/`end_before` (epoch seconds) bound the rows considered: leave out the
    ramp-up (spawning, warm-up) and the drain after the users stop, both of which are trends
    that are not saturation.
    """
    test = TEST.format(alpha=alpha, growth=min_growth, window=window)
    kept = [
        r
        for r in rows
        if (start_after is None or r["t"] >= start_after)
        and (end_before is None or r["t"] < end_before)
    ]
    if not kept:
        return Verdict(False, test, window, reason="no intervals after the ramp-up")
    t_first = float(kept[0]["t"])
    best: Verdict | None = None
    for key, floor in SERIES_FLOOR.items():
        ts, ys = _series(kept, key)
        if len(ts) < MIN_POINTS:
            continue
        lo = 0
        run: list[Verdict] = []
        for hi in range(len(ts)):
            while ts[hi] - ts[lo] >= window:
                lo += 1
            if hi - lo + 1 < MIN_POINTS:
                continue
            wy = ys[lo : hi + 1]
            p = mann_kendall_p(wy)
            if p >= alpha:
                run = []
                continue
            wt = ts[lo : hi + 1]
            slope = theil_sen_slope(wt, wy)
            rise = slope * window
            level = max(float(np.median(wy)), floor)
            if rise >= floor and rise >= min_growth * level:
                v = Verdict(
                    True,
                    test,
                    window,
                    series=key,
                    at_s=ts[hi] - t_first,
                    at_t=ts[hi],
                    slope_per_s=slope,
                    growth=rise / level,
                    p_value=p,
                    reason=(
                        f"{key} rose {slope:.3g}/s over {window:g}s windows (Mann-Kendall "
                        f"p={p:.1e}): queueing grows without bound, the load is past capacity"
                    ),
                )
                run.append(v)
                if len(run) >= persist:
                    if best is None or run[0].at_s < best.at_s:
                        best = run[0]
                    break
            else:
                run = []
    if best is not None:
        return best
    return Verdict(False, test, window, reason="no series grew significantly")
