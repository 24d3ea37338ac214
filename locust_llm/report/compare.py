"""Side-by-side comparison of scenarios against a baseline.

Pairing: the baseline is the scenario named by `--baseline`, else one whose scenario.json
says `"reference": true` (scenario files: `reference = true`), else the first scenario.  The *variant* of a scenario is its values
of the varying parameters other than the sweep axis (users/rate); every scenario of another
variant is compared with the baseline-variant scenario at the same axis value, so a
`lb x users` run compares least_conn@50 with round_robin@50, never with round_robin@10.

Ratios (candidate / baseline) are given for the summary's headline numbers; bootstrap CIs
for the differences of p50 and p99 of TTFT, TPOT, ITL and E2E come from records.jsonl.

Repeats (`repeat = N`): each repeat group is compared as one scenario (report.repeats.collapse):
its headline numbers are the means over the repeats, each with its 95 % CI (Student's t over
the N runs), and a difference is *significant* only when the two CIs do not overlap: a
conservative test (disjoint 95 % CIs imply a Welch t-test p below 0.05, not the reverse),
chosen because a reader can check it on the table. Without repeats on both sides the between-run
spread is unknown and the ratio says "single run".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .load import Scenario
from .repeats import collapse
from .stats import DEFAULT_SEED, DiffCI, bootstrap_quantile_diff
from .sweeps import AXIS_PREFERENCE, group_keys
from .tables import METRICS, scalar_params, scenario_row, varying_params

RATIO_FIELDS = (
    ("request_throughput", "requests/s", True),
    ("output_throughput", "output tok/s", True),
    ("request_goodput", "goodput req/s", True),
    ("p50_ttft_ms", "TTFT p50 ms", False),
    ("p99_ttft_ms", "TTFT p99 ms", False),
    ("p50_tpot_ms", "TPOT p50 ms", False),
    ("p99_itl_ms", "ITL p99 ms", False),
    ("p50_e2el_ms", "E2E p50 ms", False),
    ("p99_e2el_ms", "E2E p99 ms", False),
    ("error_rate", "error rate", False),
)
QUANTILES = (0.5, 0.99)
SIGNIFICANCE = "95% CIs of the repeats' means do not overlap"


def ci_significant(a: list[float | None], b: list[float | None]) -> bool | None:
    """True when the two 95 % CIs are disjoint; None when either is unknown."""
    if None in a or None in b or not a or not b:
        return None
    return bool(a[1] < b[0] or b[1] < a[0])


@dataclass
class Comparison:
    baseline: Scenario
    candidate: Scenario
    ratios: list[dict[str, Any]] = field(default_factory=list)
    diffs: list[tuple[str, DiffCI]] = field(default_factory=list)

    @property
    def repeated(self) -> bool:
        return bool(self.baseline.repeats and self.candidate.repeats)

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline.name,
            "candidate": self.candidate.name,
            "repeats": {
                "baseline": len(self.baseline.repeats) or 1,
                "candidate": len(self.candidate.repeats) or 1,
            },
            "significance": SIGNIFICANCE if self.repeated else "single run",
            "ratios": self.ratios,
            "quantile_differences": [
                {
                    "metric": m,
                    "quantile": d.q,
                    "baseline_ms": d.baseline,
                    "candidate_ms": d.candidate,
                    "diff_ms": d.diff,
                    "ci_low_ms": d.lo,
                    "ci_high_ms": d.hi,
                    "level": d.level,
                    "n_baseline": d.n_baseline,
                    "n_candidate": d.n_candidate,
                }
                for m, d in self.diffs
            ],
        }


def _pick_baseline(scenarios: list[Scenario], name: str | None) -> Scenario:
    if name:
        for sc in scenarios:
            if sc.name == name or sc.name.endswith("/" + name):
                return sc
        raise ValueError(
            f"baseline {name!r} is not a scenario of this report; "
            f"choose one of: {', '.join(s.name for s in scenarios)}"
        )
    for sc in scenarios:
        if sc.params.get("reference") is True:
            return sc
    return scenarios[0]


def pairs(
    scenarios: list[Scenario], baseline: str | None = None
) -> list[tuple[Scenario, Scenario]]:
    """(baseline, candidate) pairs as described in the module doc."""
    if len(scenarios) < 2:
        return []
    base = _pick_baseline(scenarios, baseline)
    varying = varying_params(scenarios)
    axis = next((a for a in AXIS_PREFERENCE if a in varying), None)
    others = group_keys(scenarios, axis, varying)

    def variant(sc: Scenario) -> tuple:
        p = scalar_params(sc)
        return tuple(repr(p.get(k)) for k in others)

    base_variant = variant(base)
    base_by_x = {}
    for sc in scenarios:
        if variant(sc) == base_variant:
            base_by_x.setdefault(repr(scalar_params(sc).get(axis)) if axis else None, sc)
    out = []
    for sc in scenarios:
        if sc is base or (variant(sc) == base_variant and axis is not None):
            continue
        if variant(sc) == base_variant:
            out.append((base, sc))
            continue
        x = repr(scalar_params(sc).get(axis)) if axis else None
        b = base_by_x.get(x, base if axis is None else None)
        if b is not None:
            out.append((b, sc))
    return out


def compare(
    base: Scenario, cand: Scenario, *, resamples: int = 1000, seed: int = DEFAULT_SEED
) -> Comparison:
    """Ratios of headline numbers and bootstrap CIs of p50/p99 differences."""
    rb, rc = scenario_row(base, []), scenario_row(cand, [])
    c = Comparison(baseline=base, candidate=cand)
    for key, label, higher_better in RATIO_FIELDS:
        b, v = rb.get(key, math.nan), rc.get(key, math.nan)
        ratio = (
            v / b if isinstance(b, float) and b not in (0.0,) and not math.isnan(b) else math.nan
        )
        c.ratios.append(
            {
                "field": key,
                "label": label,
                "baseline": b,
                "candidate": v,
                "ratio": ratio,
                "higher_is_better": higher_better,
                **_repeat_fields(base, cand, key),
            }
        )
    for m in METRICS:
        for q in QUANTILES:
            d = bootstrap_quantile_diff(
                base.samples.metric(m), cand.samples.metric(m), q, resamples=resamples, seed=seed
            )
            if d is not None:
                c.diffs.append((m, d))
    return c


def _repeat_fields(base: Scenario, cand: Scenario, key: str) -> dict[str, Any]:
    """Each side's 95 % CI and the significance verdict; "single run" without repeats."""
    if not (base.repeats and cand.repeats):
        return {"significant": None, "note": "single run"}
    cb, cc = base.ci.get(key), cand.ci.get(key)
    if cb is None or cc is None:
        return {"significant": None, "note": "no CI"}
    return {
        "baseline_ci95": cb["ci95"],
        "candidate_ci95": cc["ci95"],
        "significant": ci_significant(cb["ci95"], cc["ci95"]),
    }


def comparisons(
    scenarios: list[Scenario],
    baseline: str | None = None,
    *,
    resamples: int = 1000,
    seed: int = DEFAULT_SEED,
) -> list[Comparison]:
    """Every (baseline, candidate) pair, each repeat group taken as one scenario."""
    units = collapse(scenarios)
    return [compare(b, c, resamples=resamples, seed=seed) for b, c in pairs(units, baseline)]
