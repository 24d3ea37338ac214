"""Plotly figures of a report: sweep curves, latency CDFs, per-scenario time series.

Figures are returned as `plotly.graph_objects.Figure`; html.py serialises and embeds them.
Every user-controlled string placed in a figure (scenario names, replica ids, event text)
goes through `html.escape`: plotly renders a subset of HTML tags in labels and decodes
entities, so escaped text displays as typed and can never become markup.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .load import Scenario
from .stats import ecdf
from .sweeps import Sweep
from .tables import metric_column, no_data
from .values import esc, num

TEMPLATE = "plotly_white"
# plotly's mode bar stands vertical at the right edge, so it never covers a (subplot) title
MODEBAR = {"orientation": "v"}
METRIC_TITLES = {
    "ttft": "TTFT (ms)",
    "tpot": "TPOT (ms)",
    "itl": "ITL (ms)",
    "e2el": "E2E latency (ms)",
}


def sweep_figure(sweep: Sweep) -> go.Figure:
    """The concurrency sweep's two plots side by side: output tok/s and TTFT against the sweep axis.

    The knee is a star on the throughput curve and a dotted line on both panels; the largest
    SLO-meeting value is a green line.
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            f"output throughput vs {esc(sweep.axis)}",
            f"TTFT vs {esc(sweep.axis)}",
        ),
        horizontal_spacing=0.1,
    )
    for i, c in enumerate(sweep.curves):
        color = _palette(i)
        name = esc(c.label)
        # a point with no completed request has no throughput: a gap and a note, never a 0
        gaps = [no_data(s) for s in c.scenarios]
        tput = [None if g else y for y, g in zip(c.throughput, gaps, strict=False)]
        for x, g in zip(c.xs, gaps, strict=False):
            if g:
                fig.add_annotation(
                    x=x, y=0, text="no data", hovertext=esc(g), showarrow=False,
                    yanchor="bottom", font={"color": "#999", "size": 11}, row=1, col=1,
                )  # fmt: skip
        cis = c.throughput_ci or [None] * len(c.xs)
        bars = None
        if any(ci and None not in ci for ci in cis):  # repeats: the 95 % CI of each mean
            bars = {
                "type": "data",
                "symmetric": False,
                "array": [ci[1] - y if ci and y is not None else None for ci, y in zip(cis, tput)],
                "arrayminus": [
                    y - ci[0] if ci and y is not None else None for ci, y in zip(cis, tput)
                ],
                "color": color,
            }
        fig.add_trace(
            go.Scatter(
                x=c.xs,
                y=tput,
                error_y=bars,
                mode="lines+markers",
                name=name,
                legendgroup=name,
                line={"color": color},
                hovertemplate=f"{esc(sweep.axis)}=%{{x}}<br>%{{y:.1f}} tok/s<extra>{name}</extra>",
            ),
            row=1,
            col=1,
        )
        for stat, dash in (("p50", "solid"), ("p99", "dash")):
            ys = [num(s.summary.get(metric_column("ttft", stat))) for s in c.scenarios]
            if stat == "p50":
                ys = [
                    y if np.isfinite(y) else num(s.summary.get("median_ttft_ms"))
                    for y, s in zip(ys, c.scenarios)
                ]
            fig.add_trace(
                go.Scatter(
                    x=c.xs,
                    y=ys,
                    mode="lines+markers",
                    name=f"{name} TTFT {stat}",
                    legendgroup=name,
                    showlegend=False,
                    line={"color": color, "dash": dash},
                    hovertemplate=f"{esc(sweep.axis)}=%{{x}}<br>TTFT {stat} %{{y:.0f}} ms<extra>{name}</extra>",
                ),
                row=1,
                col=2,
            )
        if c.knee is not None:
            fig.add_trace(
                go.Scatter(
                    x=[c.knee.x],
                    y=[c.knee.y],
                    mode="markers",
                    marker={"symbol": "star", "size": 16, "color": color, "line": {"width": 1}},
                    name=f"knee {name}",
                    legendgroup=name,
                    showlegend=False,
                    hovertemplate=f"knee at {esc(sweep.axis)}=%{{x}}<extra>{name}</extra>",
                ),
                row=1,
                col=1,
            )
            for col in (1, 2):
                fig.add_vline(x=c.knee.x, line={"dash": "dot", "color": color}, row=1, col=col)
        if c.max_slo_x is not None:
            for col in (1, 2):
                fig.add_vline(
                    x=c.max_slo_x, line={"dash": "dash", "color": "green"}, row=1, col=col
                )
    fig.update_xaxes(title_text=esc(sweep.axis))
    fig.update_yaxes(title_text="output tokens/s", row=1, col=1, rangemode="tozero")
    fig.update_yaxes(title_text="TTFT ms (solid p50, dashed p99)", row=1, col=2, rangemode="tozero")
    fig.update_layout(template=TEMPLATE, height=420, margin={"t": 50, "b": 50}, modebar=MODEBAR)
    return fig


def _palette(i: int) -> str:
    """Distinct colours for up to 34 scenarios before repeating (sweeps have many points)."""
    base = qualitative.Plotly + qualitative.Dark24
    return base[i % len(base)]


def cdf_figure(scenarios: list[Scenario]) -> go.Figure | None:
    """Empirical CDFs of TTFT, TPOT, ITL and E2E, one line per scenario (from records.jsonl)."""
    if not any(len(s.samples) for s in scenarios):
        return None
    metrics = ("ttft", "tpot", "itl", "e2el")
    fig = make_subplots(rows=2, cols=2, subplot_titles=[METRIC_TITLES[m] for m in metrics])
    for i, sc in enumerate(scenarios):
        name = esc(sc.name)
        for j, m in enumerate(metrics):
            x, p = ecdf(sc.samples.metric(m))
            if len(x) == 0:
                continue
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=p,
                    mode="lines",
                    name=name,
                    legendgroup=name,
                    showlegend=j == 0,
                    line={"color": _palette(i), "shape": "hv"},
                    hovertemplate="%{x:.1f} ms: %{y:.3f}<extra>" + name + "</extra>",
                ),
                row=j // 2 + 1,
                col=j % 2 + 1,
            )
    fig.update_yaxes(title_text="fraction of requests ≤ x", range=[0, 1.01])
    fig.update_xaxes(type="log")
    fig.update_layout(template=TEMPLATE, height=620, margin={"t": 50}, modebar=MODEBAR)
    return fig


def scenario_t0(sc: Scenario) -> float:
    """Origin of a scenario's time axis: the summary's start time, else the earliest sample."""
    meta = sc.summary.get("meta") or {}
    t0 = num(meta.get("started_at")) if isinstance(meta, dict) else np.nan
    if np.isfinite(t0):
        return t0
    cands = [num(i.get("t")) for i in sc.summary.get("intervals") or []]
    cands += [num(s.get("t")) for s in sc.server]
    if len(sc.samples.t_start):
        cands.append(float(np.nanmin(sc.samples.t_start)))
    cands = [c for c in cands if np.isfinite(c)]
    return min(cands) if cands else 0.0


def timeseries_figure(sc: Scenario) -> go.Figure | None:
    """Client and server metrics of one scenario on one shared time axis, events marked.

    Rows appear only when there is data for them: client rates, client latency, load
    (client in-flight vs each replica's running/waiting), KV cache %, nginx connections.
    """
    t0 = scenario_t0(sc)
    rows: list[tuple[str, list[go.Scatter]]] = []
    iv = [i for i in sc.summary.get("intervals") or [] if isinstance(i, dict)]
    ts = [num(i.get("t")) - t0 for i in iv]

    def series(key: str) -> list[float]:
        # the run's first and last seconds are partial: a count there is not a rate
        rate = key in ("requests", "failed", "output_tokens")
        return [math.nan if rate and i.get("partial") else num(i.get(key)) for i in iv]

    if iv:
        rows.append(
            (
                "per second",
                [
                    go.Scatter(x=ts, y=series("requests"), name="completed/s (by finish)"),
                    go.Scatter(x=ts, y=series("failed"), name="failed/s"),
                    go.Scatter(x=ts, y=series("output_tokens"), name="output tok/s (by arrival)"),
                ],
            )
        )
        rows.append(
            (
                "latency ms",
                [
                    go.Scatter(x=ts, y=series(k), name=k.replace("_ms", "").replace("_", " "))
                    for k in ("ttft_p50_ms", "ttft_p95_ms", "itl_p50_ms", "itl_p99_ms")
                ],
            )
        )
    load: list[go.Scatter] = []
    if iv:
        load.append(go.Scatter(x=ts, y=series("in_flight"), name="client in-flight (max per s)"))
    by_replica: dict[str, list[dict[str, Any]]] = defaultdict(list)
    nginx: list[dict[str, Any]] = []
    for s in sc.server:
        if isinstance(s.get("nginx"), dict):
            nginx.append(s)
        elif "replica" in s and "error" not in s:
            by_replica[str(s["replica"])].append(s)
    kv: list[go.Scatter] = []
    for rep, pts in sorted(by_replica.items()):
        pts.sort(key=lambda s: num(s.get("t")))
        x = [num(s.get("t")) - t0 for s in pts]
        model = pts[0].get("model")
        label = esc(rep if not model else f"{rep} ({model})")
        load.append(
            go.Scatter(
                x=x, y=[num(s.get("num_requests_running")) for s in pts], name=f"{label} running"
            )
        )
        load.append(
            go.Scatter(
                x=x,
                y=[num(s.get("num_requests_waiting")) for s in pts],
                name=f"{label} waiting",
                line={"dash": "dot"},
            )
        )
        kv.append(
            go.Scatter(
                x=x, y=[100 * num(s.get("kv_cache_usage_perc")) for s in pts], name=f"{label} KV %"
            )
        )
    if load:
        rows.append(("requests", load))
    if kv:
        rows.append(("KV cache %", kv))
    if nginx:
        nginx.sort(key=lambda s: num(s.get("t")))
        x = [num(s.get("t")) - t0 for s in nginx]
        rows.append(
            (
                "nginx conns",
                [
                    go.Scatter(x=x, y=[num(s["nginx"].get(k)) for s in nginx], name=f"nginx {k}")
                    for k in ("active", "writing", "waiting")
                ],
            )
        )
    if not rows:
        return None
    fig = make_subplots(
        rows=len(rows),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04,
        specs=[[{"secondary_y": r[0] == "per second"}] for r in rows],
    )
    for r, (title, traces) in enumerate(rows, start=1):
        for tr in traces:
            secondary = tr.name.startswith("output tok/s")
            tr.mode = "lines"
            tr.legendgroup = f"row{r}"
            if title == "per second":
                fig.add_trace(tr, row=r, col=1, secondary_y=secondary)
            else:
                fig.add_trace(tr, row=r, col=1)
        fig.update_yaxes(title_text=title, row=r, col=1, rangemode="tozero")
        if title == "per second":
            fig.update_yaxes(title_text="tok/s", row=r, col=1, secondary_y=True, rangemode="tozero")
    for ev in sc.events:
        t = num(ev.get("t"))
        if not np.isfinite(t):
            continue
        text = esc(" ".join(str(ev.get(k)) for k in ("kind", "detail") if ev.get(k) is not None))
        fig.add_vline(x=t - t0, line={"color": "red", "dash": "dash"})
        fig.add_annotation(
            x=t - t0,
            y=1.0,
            yref="paper",
            text=text,
            showarrow=False,
            yanchor="bottom",
            font={"color": "red", "size": 11},
        )
    fig.update_xaxes(title_text="seconds since start", row=len(rows), col=1)
    fig.update_layout(
        template=TEMPLATE,
        height=170 * len(rows) + 110,
        margin={"t": 40, "b": 40},
        legend={"tracegroupgap": 40},
        hovermode="x unified",
        modebar=MODEBAR,
    )
    return fig
