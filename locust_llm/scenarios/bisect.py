"""The search for the highest load meeting every SLO: bracket by doubling, then bisect.

Pure: it proposes the next value to probe and is told whether that probe passed. Doubling
from `min` finds the first failing load in log2(max/min) probes without spending a long
probe deep in overload; bisection then halves the bracket [highest pass, lowest fail] until it
is no wider than `tolerance`. A probe that fails (an SLO missed, or the run saturated) caps
the search: nothing above a failure is probed again, which also keeps a lucky pass above
a failure (noise at saturation) from being reported as capacity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Bisection:
    lo_bound: float
    hi_bound: float
    tolerance: float
    integer: bool = True
    passed: list[float] = field(default_factory=list)
    failed: list[float] = field(default_factory=list)

    @property
    def best(self) -> float | None:
        """Highest passing value below every failure (None: even `min` failed)."""
        cap = min(self.failed) if self.failed else math.inf
        ok = [v for v in self.passed if v < cap]
        return max(ok) if ok else None

    @property
    def lowest_fail(self) -> float | None:
        return min(self.failed) if self.failed else None

    @property
    def bracket(self) -> tuple[float | None, float | None]:
        return self.best, self.lowest_fail

    def record(self, value: float, ok: bool) -> None:
        (self.passed if ok else self.failed).append(value)

    def _round(self, v: float) -> float:
        return float(int(v)) if self.integer else v

    def next_value(self) -> float | None:
        """The next load to probe, or None when the search is over."""
        if not self.passed and not self.failed:
            return self._round(self.lo_bound)
        best, fail = self.bracket
        if best is None:
            return None  # the lowest load already fails
        if fail is None:  # still bracketing: double, up to the top of the range
            if best >= self.hi_bound:
                return None
            return self._round(
                min(max(best * 2, best + 1 if self.integer else best), self.hi_bound)
            )
        if fail - best <= self.tolerance:
            return None
        mid = self._round((best + fail) / 2)
        if mid <= best or mid >= fail:
            return None  # integer bracket of width 1
        return mid

    def state(self) -> dict[str, object]:
        best, fail = self.bracket
        if best is None:
            why = f"the lowest load {self.lo_bound:g} already fails"
        elif fail is None:
            why = f"the top of the range {self.hi_bound:g} still passes: capacity is above it"
        else:
            why = f"knee between {best:g} (passes) and {fail:g} (fails)"
        return {"best": best, "bracket": [best, fail], "converged_note": why}
