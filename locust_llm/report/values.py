"""How a report reads and writes one value: escaped for HTML, or a record field as a float."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

__all__ = ["esc", "num"]


def esc(s: Any) -> str:
    """Text for an HTML page: scenario names and server messages come from outside."""
    return html.escape(str(s), quote=True)


def num(v: Any) -> float:
    """A JSON field as a float, NaN when it is missing or not a number (``True`` is not 1:
    a flag in the wrong field must not become a latency)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan
