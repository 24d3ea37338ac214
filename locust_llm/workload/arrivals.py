"""Open-loop arrival processes: absolute send times at a target rate.

Why: closed-loop users wait for a reply before sending again, so a slow server receives
less load and its queueing is hidden (coordinated omission). Open loop sends on a
schedule that does not depend on responses; the gap between a request's scheduled time
and its actual dispatch is the client-side ``queue_time``.

Processes (inter-arrival time X at rate R, as `vllm bench serve` draws them):

- ``poisson``: X ~ Exponential(mean 1/R).
- ``gamma``: X ~ Gamma(shape=b, scale=1/(R*b)) with burstiness b; mean 1/R, coefficient of
  variation 1/sqrt(b). b = 1 is Poisson, b < 1 burstier, b > 1 more regular.
- ``constant``: X = 1/R.
- ``R = inf``: every arrival at t = 0 (a burst).

The first arrival of the global sequence is at t = 0 (as in `vllm bench serve`), arrival
k at the sum of k draws.

**Splitting across K generators (Locust ``--processes``/workers) — deterministic interleave.**
Every generator draws the *same* global sequence (same seed) and generator i of K keeps
arrivals i, i+K, i+2K, ... So the union over the K generators is exactly the one process
at rate R: the gamma process keeps its burstiness and ``constant`` stays evenly spaced,
which independent R/K streams would not give (superposed gamma streams drift towards
Poisson, superposed constant streams collide). The cost is that each generator draws K
times as many variates (about a microsecond each) and that the generators must share a
start time (the test start; skew between workers shifts their slices by that skew).
``split="independent"`` (rate R/K each, seeds derived from (seed, i)) is available for
comparison; for Poisson both are exact.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

__all__ = ["PROCESSES", "inter_arrival_sampler", "ArrivalSchedule"]

PROCESSES = ("poisson", "gamma", "constant")


def inter_arrival_sampler(rate: float, process: str = "poisson", burstiness: float = 1.0):
    """Return ``draw(rng) -> seconds`` for one inter-arrival time of the process."""
    if process not in PROCESSES:
        raise ValueError(
            f"unknown arrival process {process!r}; expected one of {', '.join(PROCESSES)}"
        )
    if not (rate > 0):
        raise ValueError(f"arrival rate must be > 0 requests/s, got {rate!r}")
    if not (burstiness > 0 and math.isfinite(burstiness)):
        raise ValueError(f"burstiness must be a finite number > 0, got {burstiness!r}")
    if math.isinf(rate):
        return lambda rng: 0.0
    if process == "constant":
        gap = 1.0 / rate
        return lambda rng: gap
    if process == "poisson" or (process == "gamma" and burstiness == 1.0):
        return lambda rng: rng.expovariate(rate)
    shape, scale = burstiness, 1.0 / (rate * burstiness)
    return lambda rng: rng.gammavariate(shape, scale)


class ArrivalSchedule:
    """This generator's share of an arrival process at total rate ``rate``.

    Iterating yields absolute send times in seconds from the shared start (non-decreasing).
    ``index``/``count``: this generator's position among ``count`` generators (see the
    module docstring for the split).
    """

    def __init__(
        self,
        rate: float,
        process: str = "poisson",
        *,
        burstiness: float = 1.0,
        seed: int = 0,
        index: int = 0,
        count: int = 1,
        split: str = "interleave",
    ) -> None:
        if count < 1 or not (0 <= index < count):
            raise ValueError(f"generator index {index} out of range for {count} generator(s)")
        if split not in ("interleave", "independent"):
            raise ValueError(f"unknown split {split!r}; expected 'interleave' or 'independent'")
        self.rate, self.process, self.burstiness = float(rate), process, float(burstiness)
        self.seed, self.index, self.count, self.split = seed, index, count, split
        own_rate = self.rate if split == "interleave" else self.rate / count
        self._draw = inter_arrival_sampler(own_rate, process, burstiness)

    @property
    def own_rate(self) -> float:
        """This generator's expected requests/s (R/K either way)."""
        return self.rate / self.count

    def __iter__(self) -> Iterator[float]:
        draw = self._draw
        if self.split == "independent":
            rng = random.Random(f"arrivals:{self.seed}:{self.index}/{self.count}")
            t = 0.0
            while True:
                yield t
                t += draw(rng)
        rng = random.Random(f"arrivals:{self.seed}")
        t, k, skip, index = 0.0, 0, self.count, self.index
        while True:
            if k % skip == index:
                yield t
            t += draw(rng)
            k += 1

    def times(self, duration: float) -> list[float]:
        """All of this generator's send times in ``[0, duration)``."""
        if math.isinf(self.rate):
            raise ValueError(
                "an infinite rate has infinitely many arrivals at t=0; bound it by count instead"
            )
        out = []
        for t in self:
            if t >= duration:
                break
            out.append(t)
        return out
