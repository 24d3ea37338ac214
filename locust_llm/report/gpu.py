"""The report's GPU section per scenario: the sampler's series as charts, and the figures.

Series come from `gpu_telemetry.jsonl` in the scenario directory (telemetry.series, the same
code the LLM tab uses); the figures (energy per output token, output tok/s per GPU, per
replica energy and utilization) are the summary's `gpu` field as the run computed it over the
measured window, shown here, not recomputed. Each GPU's trace is named by the replica that
used it (the plan's GPU groups, kept in the summary's `gpu.replicas`).
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from locust_llm.telemetry.series import FIELDS, LABELS, series_of

from .load import Scenario
from .values import esc, num


def _groups(sc: Scenario) -> dict[str, list[int]]:
    reps = (sc.summary.get("gpu") or {}).get("replicas") or {}
    return {str(k): list(v.get("gpus") or []) for k, v in reps.items() if isinstance(v, dict)}


def gpu_label(g: dict[str, Any]) -> str:
    return f"GPU {g['gpu']}" + (f" ({g['replica']})" if g.get("replica") else "")


def gpu_figure(sc: Scenario, t0: float) -> go.Figure | None:
    """Utilization, memory, power and SM clock per GPU against seconds since `t0`."""
    if not sc.gpu_samples:
        return None
    s = series_of(sc.gpu_samples, _groups(sc))
    fig = make_subplots(
        rows=len(FIELDS),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.05,
        subplot_titles=[f"{LABELS[k][0]} ({LABELS[k][1]})" for k in FIELDS],
    )
    for g in s["gpus"]:
        x = [t - t0 for t in g["t"]]
        name = esc(gpu_label(g))
        for row, k in enumerate(FIELDS, start=1):
            fig.add_trace(
                go.Scatter(
                    x=x, y=[num(v) for v in g[k]], name=name, legendgroup=name,
                    showlegend=row == 1, mode="lines",
                    hovertemplate=f"%{{y:.1f}} {LABELS[k][1]}<extra>{name}</extra>",
                ),
                row=row, col=1,
            )  # fmt: skip
        for row, k in enumerate(FIELDS, start=1):
            fig.update_yaxes(title_text=LABELS[k][1], row=row, col=1, rangemode="tozero")
    fig.update_xaxes(title_text="seconds since start", row=len(FIELDS), col=1)
    fig.update_layout(
        template="plotly_white",
        height=150 * len(FIELDS) + 110,
        margin={"t": 40, "b": 40},
        hovermode="x unified",
        modebar={"orientation": "v"},
    )
    return fig


def gpu_text(sc: Scenario) -> str:
    """The summary's GPU figures as one table (per GPU) and one sentence (per token, replica)."""
    from .values import fmt

    g = sc.summary.get("gpu") or {}
    if not g.get("gpus"):
        return ""
    rows = "".join(
        f'<tr><td class="l">GPU {esc(x.get("gpu"))}</td><td>{fmt(x.get("mean_util_pct"))}</td>'
        f"<td>{fmt(x.get('mean_power_w'))}</td><td>{fmt(x.get('max_mem_used_mib'), 0)}</td>"
        f"<td>{fmt(x.get('mean_sm_clock_mhz'), 0)}</td><td>{fmt(x.get('energy_j'))}</td>"
        f"<td>{esc(x.get('energy_source') or '–')}</td></tr>"
        for x in g["gpus"]
    )
    reps = "".join(
        f'<tr><td class="l">{esc(name)}</td><td>{esc(", ".join(map(str, r.get("gpus") or [])))}'
        f"</td><td>{fmt(r.get('mean_util_pct'))}</td><td>{fmt(r.get('energy_j'))}</td></tr>"
        for name, r in (g.get("replicas") or {}).items()
    )
    out = [
        '<table class="gpu"><tr><th class="l">GPU</th><th>mean util %</th><th>mean W</th>'
        f"<th>max MiB</th><th>mean SM MHz</th><th>energy J</th><th>source</th></tr>{rows}</table>",
        f'<p class="gpu-figures">energy per output token <b>{fmt(g.get("energy_per_output_token_j"), 3)} J</b>, '
        f"output tokens/s per GPU <b>{fmt(g.get('output_tokens_per_s_per_gpu'))}</b>, "
        f"total {fmt(g.get('energy_j'))} J over {fmt(g.get('seconds'))} s "
        f"({fmt(g.get('mean_power_w'))} W)</p>",
    ]
    if reps:
        out.append(
            '<table class="gpu-replicas"><tr><th class="l">replica</th><th>GPUs</th>'
            f"<th>mean util %</th><th>energy J</th></tr>{reps}</table>"
        )
    return "".join(out)
