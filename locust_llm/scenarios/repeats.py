"""`repeat = N`: a scenario run N times, as N scenarios `<name>-r1` ... `<name>-rN`.

Each repeat is an ordinary scenario (own directory, resumable); `repeat_of` in its
scenario.json names the group, and the report aggregates the group (locust_llm.report.repeats).
"""

from __future__ import annotations

import copy

from .spec import ScenarioSpec


def expand(specs: list[ScenarioSpec]) -> list[ScenarioSpec]:
    out: list[ScenarioSpec] = []
    for s in specs:
        n = int(s.params.get("repeat") or 1)
        if n <= 1:
            out.append(s)
            continue
        for k in range(1, n + 1):
            params = copy.deepcopy(s.params)
            params.pop("repeat", None)
            params["repeat_of"] = s.name
            params["name"] = f"{s.name}-r{k}"
            out.append(ScenarioSpec(params["name"], len(out), params, s.source, dict(s.swept)))
    return out
