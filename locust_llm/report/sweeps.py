"""Group scenarios into sweeps (curves over one numeric parameter) and find their knees.

A sweep axis is a numeric parameter that varies across the run's scenarios (users first:
the usual plots are against concurrency).  Scenarios that agree on every *other* varying
parameter form one curve, so `lb = ["round_robin", "least_conn"] x users = [..]` gives two
throughput curves on the same axes.

With `repeat = N` each level's repeats are one point (report.repeats.collapse): its
throughput is the mean over the repeats, `throughput_ci` its 95 % CI (error bars in the
figure), and the knee is found on the means; a level passes its SLO only when every repeat did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .knee import Knee, find_knee, max_passing
from .load import Scenario
from .repeats import collapse
from .tables import scalar_params, varying_params

STEPS_AXIS = "users (steps)"

# Preferred axes first: closed-loop concurrency, then open-loop rate, then the rest.
AXIS_PREFERENCE = ("users", "concurrency", "rate", "max_concurrency", "tp", "replicas")


@dataclass
class Curve:
    """One line of a sweep plot: the scenarios sharing all non-axis parameters."""

    label: str
    group: dict[str, Any]
    scenarios: list[Scenario]
    xs: list[float] = field(default_factory=list)
    throughput: list[float] = field(default_factory=list)
    throughput_ci: list[list[float | None] | None] = field(default_factory=list)
    knee: Knee | None = None
    max_slo_x: float | None = None
    slo_defined: bool = False

    def to_json(self, axis: str) -> dict[str, Any]:
        return {
            "axis": axis,
            "label": self.label,
            "group": self.group,
            "scenarios": [s.name for s in self.scenarios],
            "x": self.xs,
            "output_throughput": self.throughput,
            "output_throughput_ci95": self.throughput_ci,
            "repeats": [len(s.repeats) or 1 for s in self.scenarios],
            "knee": None
            if self.knee is None
            else {"x": self.knee.x, "output_throughput": self.knee.y},
            "max_x_meeting_slo": self.max_slo_x,
            "slo_defined": self.slo_defined,
        }


@dataclass
class Sweep:
    axis: str
    curves: list[Curve]


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def group_keys(scenarios: list[Scenario], axis: str | None, varying: list[str]) -> list[str]:
    """Varying parameters that define separate curves for `axis`.

    A parameter that is a function of the axis value (spawn_rate = users, a name template
    value) moves with the axis and must not split the curve into one-point pieces.
    """
    if axis is None:
        return list(varying)
    out = []
    for k in varying:
        if k == axis:
            continue
        seen: dict[str, str] = {}
        dependent = True
        for sc in scenarios:
            p = scalar_params(sc)
            x, v = repr(p.get(axis)), repr(p.get(k))
            if seen.setdefault(x, v) != v:
                dependent = False
                break
        if not dependent:
            out.append(k)
    # of keys that determine each other (users and spawn_rate = users) keep the first
    return [k for i, k in enumerate(out) if not any(_same_split(scenarios, j, k) for j in out[:i])]


def _same_split(scenarios: list[Scenario], a: str, b: str) -> bool:
    """True when `a` and `b` are functions of each other over these scenarios."""
    ab: dict[str, str] = {}
    ba: dict[str, str] = {}
    for sc in scenarios:
        p = scalar_params(sc)
        x, y = repr(p.get(a)), repr(p.get(b))
        if ab.setdefault(x, y) != y or ba.setdefault(y, x) != x:
            return False
    return True


def _throughput(sc: Scenario) -> float:
    v = sc.summary.get("output_throughput")
    return float(v) if _is_num(v) else float("nan")


def _ci(sc: Scenario) -> list[float | None] | None:
    ci = sc.ci.get("output_throughput")
    return ci["ci95"] if ci else None


def find_sweeps(scenarios: list[Scenario], min_points: int = 2) -> list[Sweep]:
    """Every numeric varying parameter with at least `min_points` distinct values in a curve."""
    scenarios = collapse(scenarios)
    varying = varying_params(scenarios)
    params = [scalar_params(s) for s in scenarios]
    axes = [
        k
        for k in varying
        if all(_is_num(p.get(k)) for p in params) and len({p.get(k) for p in params}) >= min_points
    ]
    axes.sort(key=lambda k: (AXIS_PREFERENCE.index(k) if k in AXIS_PREFERENCE else 99, k))
    chosen: list[str] = []
    for k in axes:  # spawn_rate = users is the users sweep again: one plot, not two
        if not any(
            k not in group_keys(scenarios, a, varying)
            and a not in group_keys(scenarios, k, varying)
            for a in chosen
        ):
            chosen.append(k)
    sweeps: list[Sweep] = []
    for axis in chosen:
        others = group_keys(scenarios, axis, varying)
        groups: dict[tuple, list[Scenario]] = {}
        for sc, p in zip(scenarios, params):
            key = tuple((k, repr(p.get(k))) for k in others)
            groups.setdefault(key, []).append(sc)
        curves = []
        for key, members in groups.items():
            members = sorted(members, key=lambda s: float(scalar_params(s)[axis]))
            if len({scalar_params(s)[axis] for s in members}) < min_points:
                continue
            group = {k: scalar_params(members[0]).get(k) for k, _ in key}
            label = ", ".join(f"{k}={v}" for k, v in group.items()) or "all scenarios"
            c = Curve(label=label, group=group, scenarios=members)
            c.xs = [float(scalar_params(s)[axis]) for s in members]
            c.throughput = [_throughput(s) for s in members]
            c.throughput_ci = [_ci(s) for s in members]
            c.knee = find_knee(c.xs, c.throughput)
            passed = [s.slo_passed() for s in members]
            c.slo_defined = any(p is not None for p in passed)
            c.max_slo_x = max_passing(c.xs, passed)
            curves.append(c)
        if curves:
            sweeps.append(Sweep(axis=axis, curves=curves))
    steps = step_sweep(scenarios, min_points)
    if steps is not None:
        sweeps.append(steps)
    return sweeps


def step_sweep(scenarios: list[Scenario], min_points: int = 2) -> Sweep | None:
    """Stepped runs (``locustfiles/sweep.py``: ``summary["steps"]``, one measured window per
    user count) as one curve each: the same sweep as a scenario per user count, in one run.
    Each step becomes a point carrying the step's own summary fields."""
    curves = []
    for sc in scenarios:
        steps = [st for st in sc.summary.get("steps") or [] if _is_num(st.get("users"))]
        if len({st["users"] for st in steps}) < min_points:
            continue
        points = [
            Scenario(
                name=f"{sc.name} step {st.get('label', st['users'])}",
                run_id=sc.run_id,
                path=sc.path,
                summary=st,
                params={"users": st["users"]},
            )
            for st in sorted(steps, key=lambda st: float(st["users"]))
        ]
        c = Curve(label=f"{sc.name} (stepped)", group={}, scenarios=points)
        c.xs = [float(p.params["users"]) for p in points]
        c.throughput = [_throughput(p) for p in points]
        c.knee = find_knee(c.xs, c.throughput)
        curves.append(c)  # steps have no SLO verdict of their own
    return Sweep(axis=STEPS_AXIS, curves=curves) if curves else None
