"""The per-scenario table: one flat row per scenario, written as summary.csv and shown in HTML.

Values come from the scenario's summary.json (vLLM field names, computed from the
mergeable sketches over the measured window); a field the summary lacks is recomputed from
records.jsonl so that partial or hand-made runs still fill the table.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from .load import Scenario
from .stats import percentiles

METRICS = ("ttft", "tpot", "itl", "e2el")
STATS = ("mean", "p50", "p90", "p99")
THROUGHPUT = (
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
    "request_goodput",
)
COUNTS = ("completed", "failed", "error_rate", "duration")
# the summary's pooling section (embeddings, rerank), as pooling_<field> columns when any
# scenario of the run sent pooling requests
POOLING = ("items_per_s", "input_tokens_per_s", "median_latency_ms", "p99_latency_ms")

# Parameters shown first when present; the rest of scenario.json follows alphabetically.
PARAM_ORDER = ("users", "spawn_rate", "rate", "tp", "replicas", "lb", "backend", "max_tokens")
# scenario.json keys that are bookkeeping, not experiment parameters.
NOT_PARAMS = {
    "name",
    "order",
    "slo",
    "locustfile",
    "run_id",
    "file",
    "reference",
    "swept",
    "description",
    "ready_timeout",
}


def metric_column(metric: str, stat: str) -> str:
    """Column name in summary.csv, e.g. `p99_ttft_ms` (vLLM's spelling)."""
    return f"{stat}_{metric}_ms"


def _field(sc: Scenario, metric: str, stat: str) -> float:
    s = sc.summary
    if s.get(f"count_{metric}") == 0:  # the summary writes 0.0 for "no samples"
        return math.nan
    keys = [metric_column(metric, stat)]
    if stat == "p50":
        keys.append(f"median_{metric}_ms")
    for k in keys:
        v = s.get(k)
        if isinstance(v, (int, float)):
            return float(v)
    return percentiles(sc.samples.metric(metric)).get(stat, math.nan)


def no_data(sc: Scenario) -> str | None:
    """Why the scenario measured nothing (no completed request), or None."""
    s = sc.summary
    if "no_data_reason" in s:
        return s["no_data_reason"]
    from locust_llm.metrics.nodata import no_data_reason  # summaries written before the field

    return no_data_reason(s) if "completed" in s else None


def scalar_params(sc: Scenario) -> dict[str, Any]:
    """scenario.json parameters that are plain values (what a sweep can vary)."""
    return {
        k: v
        for k, v in sc.params.items()
        if k not in NOT_PARAMS and isinstance(v, (str, int, float, bool)) and v is not None
    }


def varying_params(scenarios: list[Scenario]) -> list[str]:
    """Parameters whose value differs between scenarios, in display order."""
    values: dict[str, set[str]] = {}
    for sc in scenarios:
        for k, v in scalar_params(sc).items():
            values.setdefault(k, set()).add(repr(v))
    present = {k for k, vs in values.items() if len(vs) > 1}
    # A key missing from some scenarios also varies.
    for k in values:
        if any(k not in scalar_params(sc) for sc in scenarios):
            present.add(k)
    return order_params(present)


def order_params(keys: Any) -> list[str]:
    keys = set(keys)
    return [k for k in PARAM_ORDER if k in keys] + sorted(keys - set(PARAM_ORDER))


def scenario_row(sc: Scenario, params: list[str]) -> dict[str, Any]:
    """One row of summary.csv: identity, parameters, throughput, latency, errors, SLO."""
    s = sc.summary
    completed = int(s.get("completed") or 0)
    failed = int(s.get("failed") or 0)
    total = completed + failed
    row: dict[str, Any] = {"run_id": sc.run_id, "scenario": sc.name}
    sp = scalar_params(sc)
    for p in params:
        row[p] = sp.get(p, "")
    reason = no_data(sc)
    for k in THROUGHPUT:
        v = s.get(k)
        # no completed request: no throughput was measured (0 would read as a collapse)
        row[k] = float(v) if isinstance(v, (int, float)) and reason is None else math.nan
    row["completed"] = completed
    row["failed"] = failed
    row["error_rate"] = failed / total if total else math.nan
    row["duration"] = float(s.get("duration") or math.nan)
    for m in METRICS:
        for st in STATS:
            row[metric_column(m, st)] = _field(sc, m, st)
    row["no_data"] = reason or ""
    passed = sc.slo_passed()
    row["slo_passed"] = "" if passed is None else passed
    row["slo"] = "; ".join(
        f"{x.get('expr')}={'PASS' if x.get('passed') else 'FAIL'}" for x in (s.get("slo") or [])
    )
    return row


def rows(scenarios: list[Scenario]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) of the run's summary table; columns are the same for every row."""
    params = varying_params(scenarios) or order_params(
        set().union(*(scalar_params(s) for s in scenarios)) if scenarios else set()
    )
    out = [scenario_row(sc, params) for sc in scenarios]
    if any(sc.summary.get("pooling") for sc in scenarios):
        for sc, row in zip(scenarios, out, strict=True):
            pool = sc.summary.get("pooling") or {}
            for k in POOLING:
                v = pool.get(k)
                row[f"pooling_{k}"] = float(v) if isinstance(v, (int, float)) else math.nan
    columns = list(out[0]) if out else ["run_id", "scenario"]
    return columns, out


def _csv_value(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def write_csv(path: Path, columns: list[str], table: list[dict[str, Any]]) -> None:
    """summary.csv: one row per scenario, NaN written as an empty cell."""
    with Path(path).open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in table:
            w.writerow({k: _csv_value(r.get(k, "")) for k in columns})
