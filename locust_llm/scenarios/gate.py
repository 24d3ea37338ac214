"""Gates on the result of a whole file: `gate = "max_users_meeting_slo >= 40"`.

A sweep runs past saturation on purpose, so one of its scenarios failing its SLO says nothing
about the deployment; what CI wants to hold is the capacity the sweep or search found. A gate
compares one field of the run's result (see `run_result`) with a number.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}
_GATE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(>=|<=|==|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Gate:
    expr: str
    field: str
    op: str
    threshold: float

    def check(self, result: dict[str, Any]) -> dict[str, Any]:
        """One row like the SLO rows: {expr, field, value, threshold, passed}."""
        value = result.get(self.field)
        ok = isinstance(value, (int, float)) and _OPS[self.op](float(value), self.threshold)
        return {
            "expr": self.expr,
            "field": self.field,
            "value": value,
            "threshold": self.threshold,
            "passed": bool(ok),
        }


def parse_gate(expr: str) -> Gate:
    """Raises ValueError with what is expected."""
    m = _GATE.match(expr) if isinstance(expr, str) else None
    if not m:
        raise ValueError(
            f"gate {expr!r}: expected FIELD OP NUMBER, e.g. "
            '"max_users_meeting_slo >= 40" (OP one of >=, <=, >, <, ==)'
        )
    return Gate(expr.strip(), m.group(1), m.group(2), float(m.group(3)))


def parse_gates(raw: Any) -> list[Gate]:
    exprs = [raw] if isinstance(raw, str) else raw
    if not isinstance(exprs, list) or not all(isinstance(e, str) for e in exprs):
        raise ValueError(
            'gate: expected a string or a list of strings ("max_users_meeting_slo >= 40")'
        )
    return [parse_gate(e) for e in exprs]


def format_row(row: dict[str, Any]) -> str:
    v = row["value"]
    shown = "no data" if v is None else f"{v:g}" if isinstance(v, (int, float)) else str(v)
    return f"GATE {'PASS' if row['passed'] else 'FAIL'} {row['expr']} (got {shown})"
