"""One latency metric's samples: exact while affordable, a relative-error sketch beyond.

vLLM reports ``np.percentile(samples, q)`` (linear interpolation) over every sample; a sketch
alone cannot equal that on runs of normal size, where p99.9 rests on one or two samples. So a
:class:`Distribution` keeps the samples themselves (8 bytes each, in an ``array('d')``) next to
a :class:`LogHistogram`, and answers percentiles with numpy over the samples while it has them.
The owner (the collector) drops the samples of a metric once the run holds more than
:data:`EXACT_CAP` of them; from then on percentiles come from the sketch, interpolated between
neighbouring ranks, within its ``rel_error`` (:data:`SKETCH_REL_ERROR`) of numpy's value.
Count, mean, standard deviation, min and max are exact either way.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from locust_llm.metrics.sketch import LogHistogram

__all__ = ["Distribution", "EXACT_CAP", "SKETCH_REL_ERROR"]

EXACT_CAP = 200_000  # samples per metric per run kept exactly (1.6 MB each)
SKETCH_REL_ERROR = 0.005  # the percentile bound once a metric has more samples than that


class Distribution:
    """Samples of one metric; merges like the sketch, exactly while both sides are exact."""

    __slots__ = ("sketch", "samples")

    def __init__(self, exact: bool = True, rel_error: float = SKETCH_REL_ERROR) -> None:
        self.sketch = LogHistogram(rel_error)
        self.samples: array | None = array("d") if exact else None

    # -- recording -------------------------------------------------------------------------
    def add(self, value: float) -> None:
        self.sketch.add(value)  # validates (NaN/inf raise) before the sample is kept
        if self.samples is not None:
            self.samples.append(value)

    def add_many(self, values: list[float]) -> None:
        self.sketch.add_many(values)
        if self.samples is not None:
            self.samples.extend(values)

    def drop_samples(self) -> None:
        """Forget the samples (the run has too many): percentiles come from the sketch."""
        self.samples = None

    def merge(self, other: Distribution) -> None:
        self.sketch.merge(other.sketch)
        if self.samples is not None:
            if other.samples is None and other.sketch.count:
                self.samples = None  # part of the data is sketch-only: so is the whole
            elif other.samples is not None:
                self.samples.extend(other.samples)

    # -- reading ---------------------------------------------------------------------------
    @property
    def exact(self) -> bool:
        return self.samples is not None

    @property
    def count(self) -> int:
        return self.sketch.count

    def __len__(self) -> int:
        return self.sketch.count

    @property
    def rel_error(self) -> float:
        return self.sketch.rel_error

    @property
    def sum(self) -> float:
        return self.sketch.sum

    @property
    def mean(self) -> float:
        return self.sketch.mean

    @property
    def std(self) -> float:
        return self.sketch.std

    @property
    def min(self) -> float:
        return self.sketch.min

    @property
    def max(self) -> float:
        return self.sketch.max

    def quantile(self, q: float) -> float:
        return self.quantiles([q])[0]

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """``np.quantile(samples, qs, method="linear")`` while exact; the sketch's otherwise.

        ``q = p / 100`` gives ``np.percentile(samples, p)`` bit for bit (numpy divides so too).
        """
        if not self.count:
            return [0.0 for _ in qs]
        if self.samples is None:
            return self.sketch.quantiles(list(qs))
        a = np.frombuffer(self.samples, dtype=np.float64)
        return [float(v) for v in np.quantile(a, np.asarray(qs, dtype=np.float64))]

    def cumulative(self, edges: Iterable[float]) -> list[int] | None:
        """Exact count of samples ``<= edge`` for each edge, or None when sketch-only."""
        if self.samples is None:
            return None
        s = np.sort(np.frombuffer(self.samples, dtype=np.float64))
        at = np.searchsorted(s, np.fromiter(edges, dtype=np.float64), side="right")
        return [int(n) for n in at]

    def buckets(self) -> list[tuple[float, int]]:
        return self.sketch.buckets()

    # -- wire ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The sketch's dict plus the raw samples as bytes (msgpack carries them as is)."""
        d = self.sketch.to_dict()
        if self.samples is not None:
            d["x"] = self.samples.tobytes()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Distribution:
        out = cls(exact=False)
        out.sketch = LogHistogram.from_dict(d)
        x = d.get("x")
        if x is not None:
            out.samples = array("d")
            out.samples.frombytes(bytes(x))
        elif not out.sketch.count:
            out.samples = array("d")
        return out
