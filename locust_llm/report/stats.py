"""Statistics over raw per-request samples: bootstrap CIs for comparisons, CDFs for plots.

Why a bootstrap: latency distributions are skewed and multi-modal (queueing), so a
normal-theory interval on a p99 difference is meaningless; resampling requests is not.
Everything is seeded so that a report rebuilt from the same files is byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 20240607
# Resamples are drawn in chunks so memory stays ~chunk * n floats even for 100k requests.
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class DiffCI:
    """Difference `candidate - baseline` of a quantile, with a percentile bootstrap CI."""

    q: float
    baseline: float
    candidate: float
    diff: float
    lo: float
    hi: float
    level: float
    n_baseline: int
    n_candidate: int

    @property
    def significant(self) -> bool:
        """True when the CI excludes zero."""
        return bool(self.lo > 0 or self.hi < 0)


def _boot_quantiles(x: np.ndarray, q: float, b: int, rng: np.random.Generator) -> np.ndarray:
    n = len(x)
    out = np.empty(b)
    step = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for i in range(0, b, step):
        k = min(step, b - i)
        idx = rng.integers(0, n, size=(k, n))
        out[i : i + k] = np.quantile(x[idx], q, axis=1)
    return out


def bootstrap_quantile_diff(
    baseline: np.ndarray,
    candidate: np.ndarray,
    q: float,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = DEFAULT_SEED,
) -> DiffCI | None:
    """Percentile-bootstrap CI for quantile(candidate, q) - quantile(baseline, q).

    The two samples are resampled independently (the runs are independent).  Returns None
    when either side has fewer than 2 samples: no interval can be stated.
    """
    a = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    a, c = a[np.isfinite(a)], c[np.isfinite(c)]
    if len(a) < 2 or len(c) < 2:
        return None
    rng = np.random.default_rng(seed)
    diffs = _boot_quantiles(c, q, resamples, rng) - _boot_quantiles(a, q, resamples, rng)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(diffs, [alpha, 1.0 - alpha])
    qa, qc = float(np.quantile(a, q)), float(np.quantile(c, q))
    return DiffCI(
        q=q,
        baseline=qa,
        candidate=qc,
        diff=qc - qa,
        lo=float(lo),
        hi=float(hi),
        level=level,
        n_baseline=len(a),
        n_candidate=len(c),
    )


def ecdf(x: np.ndarray, max_points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDF as (values, probabilities), thinned to at most `max_points` points.

    Thinning evaluates the quantile function on an even probability grid plus the extreme
    tail (p99, p99.9, max), so the plotted curve keeps its shape and its tail while the
    embedded JSON stays small for 100k-request runs.
    """
    x = np.asarray(x, dtype=float)
    x = np.sort(x[np.isfinite(x)])
    n = len(x)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    if n <= max_points:
        return x, np.arange(1, n + 1) / n
    p = np.unique(np.concatenate([np.linspace(0, 1, max_points - 3), [0.99, 0.999, 1.0]]))
    return np.quantile(x, p), p


def percentiles(x: np.ndarray, qs: tuple[float, ...] = (50, 90, 99)) -> dict[str, float]:
    """`{"mean", "p50", ...}` of a sample (NaN when empty); used when a summary lacks a field."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return {"mean": float("nan"), **{f"p{q:g}": float("nan") for q in qs}}
    out = {"mean": float(np.mean(x))}
    out.update({f"p{q:g}": float(np.percentile(x, q)) for q in qs})
    return out
