"""Load shapes as pure functions of run time, for a Locust ``LoadTestShape``.

Why: a concurrency sweep (TTFT and throughput vs users up to saturation) needs
users held at each level long enough to measure, and each level's metrics kept apart.
The schedule is plain arithmetic, so it lives here, testable without Locust; the
locustfile's ``LoadTestShape.tick`` calls ``shape.tick(self.get_run_time())`` and returns
``(tick.users, tick.spawn_rate)`` (Locust reads a third tuple element as user classes,
so the label must not be passed through).

``Tick.label`` names the step (``"users=8"``); ``Tick.warmup`` is true during the step's
warm-up seconds, whose requests should be excluded from that step's metrics.
``phases()`` lists every step's time window for splitting the summary afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Tick", "Phase", "StepSweep", "LinearRamp", "parse_users"]


@dataclass(frozen=True)
class Tick:
    users: int
    spawn_rate: float
    label: str
    warmup: bool = False

    def locust(self) -> tuple[int, float]:
        """What ``LoadTestShape.tick`` should return."""
        return self.users, self.spawn_rate


@dataclass(frozen=True)
class Phase:
    """One step's window in seconds of run time: warm-up in [start, measure_start),
    measured in [measure_start, end)."""

    label: str
    users: int
    start: float
    measure_start: float
    end: float


def parse_users(spec: str | Sequence[int]) -> list[int]:
    """``"1,2,4,8"`` -> ``[1, 2, 4, 8]``; ``ValueError`` naming the bad item."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for item in items:
        try:
            n = int(str(item).strip())
        except ValueError:
            raise ValueError(f"users list {spec!r}: {item!r} is not an integer") from None
        if n < 0:
            raise ValueError(f"users list {spec!r}: {n} is negative")
        out.append(n)
    if not out:
        raise ValueError("users list is empty")
    return out


class StepSweep:
    """Stepped concurrency: each level of ``users`` for ``warmup + hold`` seconds.

    ``spawn_rate`` defaults to the largest level, so every step is reached within ~1 s.
    """

    def __init__(
        self,
        users: Sequence[int] | str,
        hold: float,
        *,
        warmup: float = 0.0,
        spawn_rate: float | None = None,
    ) -> None:
        self.users = parse_users(users)
        if hold <= 0:
            raise ValueError(f"hold time must be > 0 s, got {hold}")
        if warmup < 0:
            raise ValueError(f"warm-up must be >= 0 s, got {warmup}")
        self.hold, self.warmup = float(hold), float(warmup)
        self.spawn_rate = float(spawn_rate) if spawn_rate else float(max(max(self.users), 1))
        if self.spawn_rate <= 0:
            raise ValueError(f"spawn rate must be > 0, got {spawn_rate}")
        self.step_seconds = self.warmup + self.hold

    @property
    def duration(self) -> float:
        return self.step_seconds * len(self.users)

    def phases(self) -> list[Phase]:
        return [
            Phase(
                f"users={u}",
                u,
                i * self.step_seconds,
                i * self.step_seconds + self.warmup,
                (i + 1) * self.step_seconds,
            )
            for i, u in enumerate(self.users)
        ]

    def tick(self, run_time: float) -> Tick | None:
        """The target at ``run_time`` seconds, ``None`` once the sweep is over (stop)."""
        if run_time < 0:
            run_time = 0.0
        i = int(run_time // self.step_seconds)
        if i >= len(self.users):
            return None
        users = self.users[i]
        in_warmup = (run_time - i * self.step_seconds) < self.warmup
        return Tick(users, self.spawn_rate, f"users={users}", in_warmup)


class LinearRamp:
    """Users rise linearly from ``start_users`` to ``end_users`` over ``duration`` s, then
    stay at ``end_users`` for ``hold`` s. ``spawn_rate`` defaults to the ramp slope (at
    least 1 user/s) so Locust follows the line instead of jumping."""

    def __init__(
        self,
        start_users: int,
        end_users: int,
        duration: float,
        *,
        hold: float = 0.0,
        spawn_rate: float | None = None,
    ) -> None:
        if start_users < 0 or end_users < 0:
            raise ValueError("user counts must be >= 0")
        if duration <= 0:
            raise ValueError(f"ramp duration must be > 0 s, got {duration}")
        if hold < 0:
            raise ValueError(f"hold must be >= 0 s, got {hold}")
        self.start_users, self.end_users = int(start_users), int(end_users)
        self.ramp, self.hold = float(duration), float(hold)
        slope = abs(self.end_users - self.start_users) / self.ramp
        self.spawn_rate = float(spawn_rate) if spawn_rate else max(1.0, slope)

    @property
    def duration(self) -> float:
        return self.ramp + self.hold

    def tick(self, run_time: float) -> Tick | None:
        if run_time < 0:
            run_time = 0.0
        if run_time < self.ramp:
            users = round(
                self.start_users + (self.end_users - self.start_users) * run_time / self.ramp
            )
            return Tick(int(users), self.spawn_rate, "ramp")
        if run_time < self.ramp + self.hold:
            return Tick(self.end_users, self.spawn_rate, f"users={self.end_users}")
        return None
