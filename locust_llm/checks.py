"""SLO expressions (``ttft_p95<=800ms``) parsed and judged against a summary; exit code 3 on FAIL.

Grammar: ``METRIC OP VALUE[UNIT]`` with OP one of ``<= < >= >``. METRIC is either a summary
field (``output_throughput``, ``request_throughput``, ``error_rate``, ``completed``...) or
``<latency>_<stat>`` with latency in ttft, ttft_content, tpot, itl, e2el (alias e2e), queue_time
and stat in mean, median, std, min, max, pNN (p50, p90, p95, p99, p99.9); for embeddings/rerank
runs ``pooling_latency_<stat>`` (up to p99) and ``pooling_items_per_s``,
``pooling_input_tokens_per_s``, ``pooling_request_throughput`` read the summary's ``pooling``
section (a field ``pooling.<name>``). Units: ``ms``/``s`` for
latencies (default ms), ``%`` for rates (``error_rate<=1%`` is 0.01). Exit code 3 follows
locust-plugins' ``--check-*`` options.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SLO",
    "SLOError",
    "SLO_EXIT_CODE",
    "parse_slo",
    "check_slos",
    "split_slos",
    "evaluate",
    "format_rows",
    "goodput_predicate",
]

SLO_EXIT_CODE = 3

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
_LATENCIES = ("ttft_content", "ttft", "tpot", "itl", "e2el", "queue_time")
_ALIASES = {"e2e": "e2el", "latency": "e2el"}
_STATS = ("mean", "median", "std", "min", "max")
_RATES = {"error_rate", "client_own_stamp"}
_COUNTS = {"completed", "failed", "aborted", "cancelled", "total_requests"}
_PLAIN = {
    "output_throughput",
    "request_throughput",
    "total_token_throughput",
    "request_goodput",
    "max_output_tokens_per_s",
    "duration",
    "total_input_tokens",
    "total_output_tokens",
} | _COUNTS
# the summary's pooling section: SLO metric -> its field there
_POOLING = {
    "pooling_items_per_s": "items_per_s",
    "pooling_input_tokens_per_s": "input_tokens_per_s",
    "pooling_request_throughput": "request_throughput",
}
_POOLING_PERCENTILES = (50.0, 90.0, 95.0, 99.0)  # metrics.pooling's
# the percentiles the summary computes (metrics.summary.PERCENTILES): any other can never be
# judged, so it is refused when the SLO is read, not after the whole run
_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
_EXPR = re.compile(r"^\s*([a-z_][a-z0-9_.]*)\s*(<=|>=|<|>)\s*([0-9.eE+-]+)\s*(ms|s|%)?\s*$")


class SLOError(ValueError):
    """An SLO expression that cannot be understood; the message says what is allowed."""


@dataclass(frozen=True)
class SLO:
    expr: str
    metric: str  # as written (normalised aliases)
    field: str  # summary field it reads
    op: str
    threshold: float  # in the summary field's unit (ms, fraction, count, per second)

    def check(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)


def _pooling_latency_field(metric: str) -> str | None:
    if not metric.startswith("pooling_latency_"):
        return None
    stat = metric[len("pooling_latency_") :]
    if stat in _STATS:
        return f"pooling.{stat}_latency_ms"
    m = re.fullmatch(r"p(\d+(?:\.\d+)?)", stat)
    if m and float(m.group(1)) in _POOLING_PERCENTILES:
        return f"pooling.p{float(m.group(1)):g}_latency_ms"
    known = ", ".join([*_STATS, *(f"p{q:g}" for q in _POOLING_PERCENTILES)])
    raise SLOError(f"pooling latency {stat} is not measured; use one of {known}")


def _value(summary: dict[str, Any], field: str) -> Any:
    """A summary field; ``pooling.<name>`` reads the pooling section (None without one)."""
    if field.startswith("pooling."):
        return (summary.get("pooling") or {}).get(field[len("pooling.") :])
    return summary.get(field)


def _latency_field(metric: str) -> str | None:
    pooled = _pooling_latency_field(metric)
    if pooled is not None:
        return pooled
    for alias, target in _ALIASES.items():
        if metric.startswith(alias + "_"):
            metric = target + metric[len(alias) :]
    for lat in _LATENCIES:
        if metric.startswith(lat + "_"):
            stat = metric[len(lat) + 1 :]
            if stat in _STATS:
                return f"{stat}_{lat}_ms"
            m = re.fullmatch(r"p(\d+(?:\.\d+)?)", stat)
            if m:
                p = float(m.group(1))
                if p not in _PERCENTILES:
                    known = ", ".join(f"p{q:g}" for q in _PERCENTILES)
                    raise SLOError(f"{lat} {stat} is not measured; use one of {known}")
                return f"p{p:g}_{lat}_ms"
    return None


def parse_slo(expr: str) -> SLO:
    m = _EXPR.match(expr)
    if not m:
        raise SLOError(
            f"cannot parse SLO {expr!r}: expected METRIC OP VALUE[UNIT], "
            "e.g. 'ttft_p95<=800ms', 'error_rate<=1%', 'output_throughput>=500'"
        )
    metric, op, raw, unit = m.groups()
    try:
        value = float(raw)
    except ValueError as e:
        raise SLOError(f"SLO {expr!r}: {raw!r} is not a number") from e
    try:
        field = _latency_field(metric)
    except SLOError as e:
        raise SLOError(f"SLO {expr!r}: {e}") from None
    if field is not None:
        if unit == "%":
            raise SLOError(f"SLO {expr!r}: a latency takes ms or s, not %")
        threshold = value * 1000 if unit == "s" else value
    elif metric in _RATES:
        if unit in ("ms", "s"):
            raise SLOError(f"SLO {expr!r}: {metric} is a ratio; write it as 1% or 0.01")
        field = metric
        if unit is None and value >= 1:
            # "error_rate<=1" reads as 1 % but means 100 %: make the writer say which
            raise SLOError(f"SLO {expr!r}: {metric} is a ratio; write {raw}% or a fraction < 1")
        threshold = value / 100 if unit == "%" else value
        if not 0 <= threshold <= 1:
            raise SLOError(f"SLO {expr!r}: {metric} must be between 0% and 100%")
    elif metric in _POOLING:
        if unit is not None:
            raise SLOError(f"SLO {expr!r}: {metric} takes a plain number")
        field, threshold = f"pooling.{_POOLING[metric]}", value
    elif metric in _PLAIN:
        if unit is not None and not (metric == "duration" and unit in ("s", "ms")):
            raise SLOError(f"SLO {expr!r}: {metric} takes a plain number")
        field = metric
        threshold = value / 1000 if unit == "ms" else value
    else:
        allowed = ", ".join(
            [f"{lat}_{{mean,median,p50,p90,p95,p99,p99.9,...}}" for lat in _LATENCIES]
            + ["pooling_latency_{mean,median,p50,p90,p95,p99,...}"]
            + sorted(_RATES | _PLAIN | set(_POOLING))
        )
        raise SLOError(f"SLO {expr!r}: unknown metric {metric!r}; allowed: {allowed}")
    return SLO(expr.strip(), metric, field, op, threshold)


def split_slos(value: str | list[str] | None) -> list[str]:
    """SLO expressions from the command line (repeated option) or the web form (one field,
    comma-separated): flattened, blanks dropped. No expression contains a comma."""
    if not value:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [e.strip() for item in items for e in str(item).split(",") if e.strip()]


def check_slos(exprs: list[str]) -> list[SLO]:
    """Parse a whole set of SLOs, refusing the ones that can never be judged: goodput counts
    requests meeting the latency SLOs, so without one it has nothing to count."""
    slos = [parse_slo(e) for e in exprs]
    if any(s.field == "request_goodput" for s in slos) and goodput_predicate(slos) is None:
        raise SLOError(
            "request_goodput needs a latency SLO to count good requests, e.g. "
            "--llm-slo 'ttft_p99<=800ms' (an upper bound on ttft, tpot or e2el)"
        )
    return slos


def evaluate(slos: list[SLO], summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per SLO: expression, measured value, pass/fail. Missing value = FAIL."""
    from locust_llm.metrics.nodata import no_data_reason

    reason = no_data_reason(summary) if "completed" in summary else None
    rows = []
    for slo in slos:
        value = _value(summary, slo.field)
        if reason is not None:  # no completed request: nothing was measured, every SLO fails
            value = None
        if slo.field.startswith("pooling."):
            if _value(summary, "pooling.count_latency") == 0:
                value = None  # no successful pooling request: 0 ms must not pass
        elif slo.field.endswith("_ms"):
            # no sample (every request failed, 1-token outputs for TPOT...): the summary says
            # 0 like vLLM does, but 0 ms must not pass a latency SLO
            lat = slo.field.split("_", 1)[1][: -len("_ms")]
            if summary.get(f"count_{lat}", 1) == 0:
                value = None
        passed = value is not None and slo.check(float(value))
        rows.append(
            {
                "expr": slo.expr,
                "field": slo.field,
                "value": value,
                "threshold": slo.threshold,
                "passed": bool(passed),
                **({"reason": reason} if reason is not None else {}),
            }
        )
    return rows


def format_rows(rows: list[dict[str, Any]]) -> list[str]:
    """Human lines: ``PASS ttft_p95<=800ms (measured 612.3 ms)``."""
    out = []
    for r in rows:
        v = r["value"]
        if v is None:
            shown = f"no data: {r['reason']}" if r.get("reason") else "no data"
        elif r["field"].endswith("_ms"):
            shown = f"{v:.2f} ms"
        elif r["field"] in _RATES:
            shown = f"{v * 100:.3g} %"
        else:
            shown = f"{v:.4g}"
        out.append(f"{'PASS' if r['passed'] else 'FAIL'} {r['expr']} (measured {shown})")
    return out


def goodput_predicate(slos: list[SLO]) -> Callable[[Any], bool] | None:
    """vLLM's goodput: a request is good when its own TTFT/TPOT/E2E meet the latency SLOs.

    Derived from the upper-bound latency SLOs on ttft, tpot and e2el (any statistic: the
    per-request value is compared with the threshold, as ``vllm bench serve --goodput`` does).
    """
    limits: list[tuple[str, Callable[[float, float], bool], float]] = []
    for slo in slos:
        if slo.op not in ("<=", "<") or not slo.field.endswith("_ms"):
            continue
        lat = slo.field.split("_", 1)[1].rsplit("_ms", 1)[0]
        attr = {"ttft": "ttft", "tpot": "tpot", "e2el": "e2e"}.get(lat)
        if attr:
            limits.append((attr, _OPS[slo.op], slo.threshold))
    if not limits:
        return None

    def good(r: Any) -> bool:
        for attr, op, limit in limits:
            v = getattr(r, attr)
            if v is not None and not op(v, limit):
                return False
        return True

    return good
