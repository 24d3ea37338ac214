"""Report tables per group: by request name, by model, by conversation turn.

Read from the summary's ``by_name``/``by_model``/``by_turn`` maps (present only when the run
had several values), so the report shows what the run computed, not a recount.
"""

from __future__ import annotations

import math
from typing import Any

from .values import esc

__all__ = ["GROUPINGS", "GROUPS_CSV", "group_tables", "group_rows", "write_group_csv"]

GROUPINGS = (("name", "request name"), ("model", "model"), ("turn", "turn"))
COLUMNS = tuple(
    (f"{stat}_{m}_ms", f"{m.upper()} {stat}")
    for m in ("ttft", "tpot", "itl")
    for stat in ("p50", "p99")
)


def group_rows(summary: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """One flat row per group of ``kind``: its name, counts and latency percentiles."""
    out = []
    for key, g in (summary.get(f"by_{kind}") or {}).items():
        row: dict[str, Any] = {
            kind: key,
            "completed": g.get("completed"),
            "failed": g.get("failed"),
        }
        for col, _ in COLUMNS:
            metric = col.split("_")[1]
            row[col] = g.get(col) if g.get(f"count_{metric}") else math.nan
        row["output_throughput"] = g.get("output_throughput")
        out.append(row)
    return out


def group_tables(summary: dict[str, Any], fmt: Any) -> str:
    """HTML tables, one per grouping the run has; ``fmt`` formats a number for a cell."""
    parts = []
    for kind, title in GROUPINGS:
        rows = group_rows(summary, kind)
        if not rows:
            continue
        head = "".join(f"<th>{esc(label)}</th>" for _, label in COLUMNS)
        parts.append(
            f'<table><tr><th class="l">by {esc(title)}</th><th>completed</th><th>failed</th>'
            f"{head}<th>output tok/s</th></tr>"
        )
        for r in rows:
            cells = "".join(f"<td>{fmt(r[c])}</td>" for c, _ in COLUMNS)
            parts.append(
                f'<tr><td class="l">{esc(r[kind])}</td><td>{fmt(r["completed"])}</td>'
                f"<td>{fmt(r['failed'])}</td>{cells}<td>{fmt(r['output_throughput'])}</td></tr>"
            )
        parts.append("</table>")
    return "".join(parts)


GROUPS_CSV = "groups.csv"


def write_group_csv(path: Any, scenarios: list[Any]) -> bool:
    """``groups.csv``: one line per (scenario, grouping, group); False when no scenario had
    groups (then no file is written)."""
    import csv

    lines = []
    for sc in scenarios:
        for kind, _ in GROUPINGS:
            for r in group_rows(sc.summary, kind):
                lines.append({"scenario": sc.name, "grouping": kind, "group": r.pop(kind), **r})
    if not lines:
        return False
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(lines[0]))
        w.writeheader()
        w.writerows(lines)
    return True
