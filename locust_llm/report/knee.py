"""Saturation knee of a throughput-vs-concurrency curve, and the largest SLO-meeting load.

Rule (Kneedle, Satopää et al. 2011, for a concave increasing curve):

1. sort points by x; replace y by its running maximum, so a throughput *drop* past the
   peak (e.g. 1158 tok/s at 30 users, 702 at 35) reads as "no further gain" rather
   than being fitted;
2. normalise x and y to [0, 1] over the tested range;
3. the knee is the point with the largest `y_norm - x_norm` (farthest above the chord
   from the first to the last point): where adding users stopped buying throughput;
4. no knee is reported when that distance is below `min_distance` (0.1 by default): the
   curve is still close to linear over the tested range, i.e. not saturated yet.

Kneedle was chosen over a "marginal gain below X % of the initial slope" rule because the
first segment of a real sweep is noisy (1 -> 5 users in a measured sweep gains half as much per user
as 5 -> 10), which makes a slope threshold fire early; the chord distance uses every point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_DISTANCE = 0.1


@dataclass(frozen=True)
class Knee:
    x: float
    y: float
    index: int
    distance: float


def find_knee(
    xs: Sequence[float], ys: Sequence[float], min_distance: float = MIN_DISTANCE
) -> Knee | None:
    """Knee of `ys` over `xs` (see module doc), or None with fewer than 3 points/no bend."""
    pts = sorted((float(x), float(y)) for x, y in zip(xs, ys) if np.isfinite(x) and np.isfinite(y))
    if len(pts) < 3:
        return None
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    env = np.maximum.accumulate(y)
    if x[-1] == x[0] or env[-1] == env[0]:
        return None
    xn = (x - x[0]) / (x[-1] - x[0])
    yn = (env - env[0]) / (env[-1] - env[0])
    d = yn - xn
    i = int(np.argmax(d))
    if d[i] < min_distance:
        return None
    return Knee(x=float(x[i]), y=float(y[i]), index=i, distance=float(d[i]))


def max_passing(xs: Sequence[float], passed: Sequence[bool | None]) -> float | None:
    """Largest x at which the SLOs passed with every lower tested x passing too.

    "Every lower x too" keeps a lucky pass above a failure (noise at saturation) from being
    advertised as capacity.  None when the lowest load already fails or no SLO was set.
    """
    pts = sorted(zip(xs, passed), key=lambda p: p[0])
    if not pts or all(p is None for _, p in pts):
        return None
    best = None
    for x, ok in pts:
        if ok is None:
            continue
        if not ok:
            break
        best = x
    return best
