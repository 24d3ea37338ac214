"""How a report reads and writes one value: escaped for HTML, or a record field as a float."""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

__all__ = ["esc", "fmt", "num"]


def esc(s: Any) -> str:
    """Text for an HTML page: scenario names and server messages come from outside."""
    return html.escape(str(s), quote=True)


def num(v: Any) -> float:
    """A JSON field as a float, NaN when it is missing or not a number (``True`` is not 1:
    a flag in the wrong field must not become a latency)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan


def fmt(v: Any, digits: int = 1) -> str:
    """Numbers for tables: NaN/None as a dash, large values without decimals."""
    if v is None or v == "":
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if abs(v) >= 1000 or (v == int(v) and abs(v) < 1e15):
            return f"{v:,.0f}"
        if abs(v) < 10 and v != int(v):
            return f"{v:.{digits + 1}f}"
        return f"{v:.{digits}f}"
    return esc(v)
