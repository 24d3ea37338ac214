"""The result of a whole scenario file, for gates: what its sweeps found.

Fields: `max_<axis>_meeting_slo` and `knee_<axis>` for each sweep axis (users, rate, ...);
with several curves on one axis, the smallest (every curve must hold the gate). Also
`scenarios`, `slo_failed` and `saturated` counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_result(run_dir: Path) -> dict[str, Any]:
    from locust_llm.report.load import load_runs
    from locust_llm.report.sweeps import find_sweeps

    scenarios = load_runs([run_dir])
    out: dict[str, Any] = {
        "scenarios": len(scenarios),
        "slo_failed": sum(1 for s in scenarios if s.slo_passed() is False),
        "saturated": sum(
            1 for s in scenarios if (s.summary.get("saturation") or {}).get("detected")
        ),
    }
    for sw in find_sweeps(scenarios) if scenarios else []:
        best = [c.max_slo_x for c in sw.curves if c.slo_defined]
        out[f"max_{sw.axis}_meeting_slo"] = (
            None if not best or any(b is None for b in best) else min(best)
        )
        knees = [c.knee.x for c in sw.curves if c.knee is not None]
        out[f"knee_{sw.axis}"] = min(knees) if knees else None
    return out


def sweep_family(params: dict[str, Any], swept: dict[str, Any]) -> tuple[str, str, float] | None:
    """(family key, axis, value) for a scenario of a users/rate sweep, else None: scenarios
    of one family differ only in the axis, so past a saturated one they need not run.
    Repeats of a level (`repeat_of`, named after the level) are of the level's family: the
    other repeats of a saturated level still run, the levels above it do not."""
    import json

    axis = next((a for a in ("users", "rate") if a in swept), None)
    if axis is None:
        return None
    rest = {k: v for k, v in params.items() if k not in ("name", "spawn_rate", "repeat_of", axis)}
    return json.dumps(rest, sort_keys=True, default=str), axis, float(swept[axis])
