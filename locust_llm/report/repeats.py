"""Across repeats of one scenario: mean, coefficient of variation and 95 % CI per metric.

The CI is Student's t over the N repeat means (each repeat is one independent run, so the
between-run spread, which a bootstrap over one run's requests cannot see, is what it
measures): mean +- t(0.975, N-1) * s / sqrt(N), s the sample standard deviation (ddof 1).
CV = s / mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .load import Samples, Scenario

METRICS = (
    "request_throughput",
    "output_throughput",
    "mean_ttft_ms",
    "p50_ttft_ms",
    "p99_ttft_ms",
    "mean_tpot_ms",
    "p50_itl_ms",
    "p99_itl_ms",
    "mean_e2el_ms",
)


# Student's t 0.975 quantiles for 1..30 degrees of freedom (scipy is not a runtime
# dependency; tests check these against scipy.stats.t.ppf); beyond 30 the normal 1.96 is
# within 2 %.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile_975(df: int) -> float:
    return _T975[df - 1] if df <= len(_T975) else 1.96


def mean_ci(values: Sequence[float]) -> dict[str, Any]:
    xs = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    n = len(xs)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "cv": None, "ci95": [None, None]}
    mean = sum(xs) / n
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "cv": None, "ci95": [None, None]}
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return {
        "n": n,
        "mean": mean,
        "std": sd,
        "cv": sd / mean if mean else None,
        "ci95": [mean - half, mean + half],
    }


def repeat_groups(scenarios: list[Scenario]) -> list[dict[str, Any]]:
    """One entry per `repeat_of` group with at least two finished repeats."""
    out = []
    for (_, name), members in _members(scenarios).items():
        if len(members) < 2:
            continue
        out.append(
            {
                "scenario": name,
                "repeats": [m.name for m in members],
                "metrics": {m: mean_ci([s.summary.get(m) for s in members]) for m in METRICS},
            }
        )
    return out


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


def repeats_table(groups: list[dict[str, Any]]) -> str:
    from .values import esc, fmt

    parts = []
    for g in groups:
        rows = "".join(
            f"<tr><td>{esc(m)}</td><td>{fmt(v['mean'], 2)}</td><td>{_pct(v['cv'])}</td>"
            f"<td>[{fmt(v['ci95'][0], 2)}, {fmt(v['ci95'][1], 2)}]</td></tr>"
            for m, v in g["metrics"].items()
        )
        parts.append(
            f"<h3>{esc(g['scenario'])} ({len(g['repeats'])} repeats)</h3><table><tr><th>metric"
            f"</th><th>mean</th><th>CV</th><th>95% CI</th></tr>{rows}</table>"
        )
    return "".join(parts)


def _key(sc: Scenario) -> tuple[str, str] | None:
    """A repeat group is per run: two runs' `rr` groups are two groups."""
    g = sc.params.get("repeat_of")
    return (sc.run_id, g) if isinstance(g, str) else None


def _members(scenarios: list[Scenario]) -> dict[tuple[str, str], list[Scenario]]:
    groups: dict[tuple[str, str], list[Scenario]] = {}
    for sc in scenarios:
        k = _key(sc)
        if k is not None:
            groups.setdefault(k, []).append(sc)
    return groups


def _pooled(members: list[Scenario]) -> Samples:
    """The repeats' requests together: the bootstrap over requests then sees all of them."""
    ss = [m.samples for m in members]
    cat = {
        k: np.concatenate([getattr(s, k) for s in ss])
        for k in ("ttft", "tpot", "itl", "e2el", "t_start", "ok")
    }
    errors: dict[str, int] = {}
    for s in ss:
        for k, n in s.errors.items():
            errors[k] = errors.get(k, 0) + n
    return Samples(**cat, errors=errors)


def _slo_all(members: list[Scenario]) -> list[dict[str, Any]]:
    """Each SLO row passes only when it passed in every repeat (a lucky run is no capacity)."""
    rows: dict[str, dict[str, Any]] = {}
    for m in members:
        for r in m.summary.get("slo") or []:
            key = str(r.get("expr"))
            if key not in rows:
                rows[key] = {**r, "passed": bool(r.get("passed"))}
            else:
                rows[key]["passed"] = rows[key]["passed"] and bool(r.get("passed"))
    return list(rows.values())


def collapse(scenarios: list[Scenario]) -> list[Scenario]:
    """Each repeat group (two or more finished repeats) as one scenario, at its first
    member's place: named after the group, parameters without `repeat_of`, every numeric
    summary field the mean over the repeats, SLO rows passing only where every repeat
    passed, requests pooled; `repeats` holds the members and `ci` each field's mean_ci.
    Scenarios that are no repeat stay as they are (`repeats` empty: a single run)."""
    groups = {g: ms for g, ms in _members(scenarios).items() if len(ms) >= 2}
    out: list[Scenario] = []
    done: set[tuple[str, str]] = set()
    for sc in scenarios:
        key = _key(sc)
        if key is None or key not in groups:
            out.append(sc)
            continue
        if key in done:
            continue
        done.add(key)
        ms = groups[key]
        g = key[1]
        summary = dict(ms[0].summary)
        ci: dict[str, dict[str, Any]] = {}
        for k, v in ms[0].summary.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                ci[k] = mean_ci([m.summary.get(k) for m in ms])
                summary[k] = ci[k]["mean"]
        summary["slo"] = _slo_all(ms)
        params = {k: v for k, v in ms[0].params.items() if k != "repeat_of"}
        params["name"] = g
        # merged runs prefix names with the run id (load_runs): the group keeps that prefix
        own = str(ms[0].params.get("name") or ms[0].name)
        prefix = ms[0].name[: -len(own)] if ms[0].name.endswith(own) else ""
        out.append(
            replace(
                ms[0],
                name=prefix + g,
                summary=summary,
                params=params,
                samples=_pooled(ms),
                repeats=list(ms),
                ci=ci,
            )  # fmt: skip
        )
    return out
