"""When each trace record is sent: recorded times, scaled, looped, split across generators.

Why: replay is open loop: a record is due at its recorded offset divided by the speed
factor, whatever the server does, so a slow server falls behind and its queueing shows.
Split across K generators (Locust ``--processes`` / workers) the same way as
``arrivals.ArrivalSchedule``: generator i of K takes records i, i+K, i+2K, ... of the one
global sequence, so the union is exactly the trace, in order. Due times are computed from
the record's absolute offset (never as accumulated gaps), so nothing drifts however long the
replay loops: pass ``k`` of the loop = ``k * period`` where the period is the trace's span
plus one mean gap (so the loop's first record does not collide with the last one).

Schedule lag (sent - scheduled) is measured by the caller per request; ``lag_summary``
gives its percentiles and says whether the replay kept up.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .trace import TraceRecord

__all__ = [
    "DEFAULT_LAG_P99_S",
    "Due",
    "LagSummary",
    "TraceSchedule",
    "lag_summary",
    "late_warning",
    "replay_fields",
]

DEFAULT_LAG_P99_S = 0.05
"""A p99 schedule lag above this means the load was not what the trace asked for."""


@dataclass(frozen=True)
class Due:
    """One send: ``at`` seconds after the shared start; ``loop`` the pass over the trace."""

    at: float
    record: TraceRecord
    index: int  # position in the global sequence (over all loops)
    loop: int


class TraceSchedule:
    """This generator's share of a trace replay.

    ``speed``: 2.0 replays twice as fast (times divided by 2). ``loop``: start again after
    the last record, forever (bound it by the run time). ``index``/``count``: this
    generator among ``count``.
    """

    def __init__(
        self,
        records: Sequence[TraceRecord],
        *,
        speed: float = 1.0,
        loop: bool = False,
        index: int = 0,
        count: int = 1,
    ) -> None:
        if not records:
            raise ValueError("a trace schedule needs at least one record")
        if not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"trace speed must be a finite number > 0, got {speed!r}")
        if count < 1 or not (0 <= index < count):
            raise ValueError(f"generator index {index} out of range for {count} generator(s)")
        self.records, self.speed, self.loop = list(records), float(speed), loop
        self.index, self.count = index, count
        span = self.records[-1].time - self.records[0].time
        gap = span / (len(self.records) - 1) if len(self.records) > 1 else 1.0
        self.period = span + (gap if gap > 0 else 1.0)  # trace seconds per loop

    @property
    def requested_rate(self) -> float:
        """Requests/s the whole replay asks for (all generators together)."""
        return len(self.records) * self.speed / self.period

    def __iter__(self) -> Iterator[Due]:
        n = len(self.records)
        g = self.index
        while True:
            loop, i = divmod(g, n)
            if loop > 0 and not self.loop:
                return
            rec = self.records[i]
            yield Due((loop * self.period + rec.time) / self.speed, rec, g, loop)
            g += self.count

    def until(self, duration: float) -> list[Due]:
        """All of this generator's sends due before ``duration`` seconds."""
        out = []
        for d in self:
            if d.at >= duration:
                break
            out.append(d)
        return out


@dataclass(frozen=True)
class LagSummary:
    count: int
    p50: float
    p90: float
    p99: float
    max: float
    threshold: float

    @property
    def late(self) -> bool:
        """p99 lag above the threshold: the replay did not keep the trace's schedule."""
        return self.p99 > self.threshold

    def warning(self) -> str | None:
        return late_warning(self.p99 * 1000, self.threshold * 1000) if self.late else None


def late_warning(p99_ms: float, threshold_ms: float) -> str:
    """What a replay that fell behind did wrong, and what to change."""
    return (
        f"trace replay fell behind: p99 schedule lag {p99_ms:.1f} ms > {threshold_ms:g} ms: "
        "the load sent was not the trace's (add users, processes or workers, or lower "
        "--llm-trace-speed)"
    )


def replay_fields(
    summary: dict[str, Any], *, records: int, requested_rate: float, max_lag_ms: float
) -> dict[str, Any]:
    """The summary's ``trace`` block: the rate the trace asked for against the rate sent,
    and whether the schedule was kept. Reads the lag percentiles the summary computed from
    the merged ``schedule_lag`` metric (so every process's sends count), and the first and
    last dispatch: (sent - 1) over that span, as the requested rate is (rows - 1) over the
    trace's span (divided by the speed)."""
    sent = int(summary.get("count_schedule_lag") or 0)
    first, last = summary.get("started_at"), summary.get("last_started_at")
    achieved = None
    if sent > 1 and first is not None and last is not None and last > first:
        achieved = (sent - 1) / (last - first)
    p99 = summary.get("p99_schedule_lag_ms") if sent else None
    late = p99 is not None and p99 > max_lag_ms
    return {
        "records": records,
        "sent": sent,
        "requested_rate": requested_rate,
        "achieved_rate": achieved,
        "achieved_vs_requested": (
            achieved / requested_rate if achieved is not None and requested_rate > 0 else None
        ),
        "max_lag_ms": max_lag_ms,
        "late": late,
        "warning": late_warning(p99, max_lag_ms) if late else None,
    }


def _pct(sorted_vals: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if len(sorted_vals) == 1:
        return sorted_vals[0]
    pos = (len(sorted_vals) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def lag_summary(lags: Sequence[float], threshold: float = DEFAULT_LAG_P99_S) -> LagSummary | None:
    """Percentiles of schedule lags in seconds (None when there are none)."""
    if not lags:
        return None
    v = sorted(lags)
    return LagSummary(len(v), _pct(v, 50), _pct(v, 90), _pct(v, 99), v[-1], threshold)
