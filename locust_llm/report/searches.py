"""The report's search section: the probes of `locust-llm search` and the load it found.

Reads `search.json` (written by locust_llm.scenarios.search) from each run directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from .values import esc, fmt

SEARCH_JSON = "search.json"


def load_searches(run_dirs: list[Path]) -> list[dict[str, Any]]:
    out = []
    for d in run_dirs:
        try:
            out.append(json.loads((Path(d) / SEARCH_JSON).read_text()))
        except (OSError, ValueError):
            continue
    return out


def search_figure(result: dict[str, Any]) -> go.Figure:
    """TTFT p99 of every probe against its load, green when it passed, with the answer."""
    by = result["by"]
    probes = result["probes"]
    xs = [p["value"] for p in probes]
    ys = [(p["runs"][0].get("p99_ttft_ms") if p["runs"] else None) for p in probes]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers+text",
            text=[str(i + 1) for i in range(len(probes))],
            textposition="top center",
            marker={
                "size": 11,
                "color": ["#2ca02c" if p["passed"] else "#d62728" for p in probes],
                "symbol": ["x" if p.get("saturated") else "circle" for p in probes],
            },
            name="probes (order shown)",
            hovertext=[
                f"{esc(by)}={p['value']:g}: {'pass' if p['passed'] else 'fail'}"
                + (" saturated" if p.get("saturated") else "")
                for p in probes
            ],
        )
    )
    best = result.get(f"max_{by}_meeting_slo")
    if best is not None:
        fig.add_vline(x=best, line_color="#2ca02c", line_dash="dash")
    fig.update_layout(
        template="plotly_white",
        title=f"search by {esc(by)}: TTFT p99 per probe (green: every SLO met)",
        xaxis_title=esc(by),
        yaxis_title="TTFT p99 (ms)",
        height=380,
    )
    return fig


def search_text(result: dict[str, Any]) -> str:
    by = result["by"]
    field = f"max_{by}_meeting_slo"
    lo, hi = result["bracket"]
    rows = "".join(
        f"<tr><td>{i + 1}</td><td>{fmt(p['value'], 2)}</td>"
        f"<td>{'pass' if p['passed'] else 'fail'}{' (saturated)' if p.get('saturated') else ''}"
        f"</td><td>{esc(', '.join(p.get('failed_slo') or []))}</td>"
        f"<td>{fmt(p['runs'][0].get('output_throughput'))}</td>"
        f"<td>{fmt(p['runs'][0].get('p99_ttft_ms'))}</td></tr>"
        for i, p in enumerate(result["probes"])
    )
    gates = "".join(
        f"<li>{esc(g['expr'])}: {'PASS' if g['passed'] else 'FAIL'}</li>"
        for g in result.get("gate") or []
    )
    return (
        f"<p><b>{esc(field)} = {fmt(result.get(field), 2)}</b> "
        f"(bracket [{fmt(lo, 2)}, {fmt(hi, 2)}], tolerance {fmt(result['tolerance'], 2)}; "
        f"{esc(result['note'])}; SLO: {esc(', '.join(result['slo']))})</p>"
        + (f"<ul>{gates}</ul>" if gates else "")
        + "<table><tr><th>#</th><th>"
        + esc(by)
        + "</th><th>verdict</th><th>failed</th><th>output tok/s</th><th>TTFT p99 ms</th></tr>"
        + rows
        + "</table>"
    )
