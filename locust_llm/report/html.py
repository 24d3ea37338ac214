"""Render the report as one self-contained HTML file (plotly.js inlined once, works offline).

Escaping rules, because scenario names, error messages and event text come from users and
servers:
- every string placed in HTML text or attributes goes through `html.escape`;
- figure JSON is embedded as `<script type="application/json">` (data, never code) with
  `<`, `>` and `&` written as JSON unicode escapes, so no `</script>` or `<!--` can end the
  block early; one small fixed script parses each block and calls `Plotly.newPlot`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from locust_llm.servermetrics import prefix_cache_by_replica

from .compare import Comparison
from .groups import group_tables
from .load import Scenario
from .sweeps import Sweep
from .tables import METRICS, STATS, metric_column
from .values import esc, fmt

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 2rem 3rem;color:#222}
h1{margin-top:1.2rem} h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right;white-space:nowrap}
th{background:#f4f4f6} td.l,th.l{text-align:left}
.pass{color:#0a7d22;font-weight:600}.fail{color:#b3141b;font-weight:600}
.scroll{overflow-x:auto}.muted{color:#777}.card{margin:1rem 0 1.5rem}
.better{background:#e6f6ea}.worse{background:#fbe9ea}
nav a{margin-right:1rem} code{background:#f4f4f6;padding:0 .2rem}
.plot{width:100%;min-height:300px}
"""

BOOT = """
document.querySelectorAll('script.figure-data').forEach(function (el) {
  var fig = JSON.parse(el.textContent);
  var div = document.getElementById(el.getAttribute('data-target'));
  Plotly.newPlot(div, fig.data, fig.layout, {responsive: true, displaylogo: false});
});
"""

LATENCY_NAMES = {"ttft": "TTFT", "tpot": "TPOT", "itl": "ITL", "e2el": "E2E"}


def script_json(obj: Any) -> str:
    """JSON safe inside a <script> element: no `<`, `>`, `&` appear literally."""
    text = obj if isinstance(obj, str) else json.dumps(obj, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class Page:
    """Accumulates sections and figures; `render()` returns the whole document."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []
        self.nav: list[tuple[str, str]] = []
        self._n = 0

    def section(self, anchor: str, title: str) -> None:
        self.nav.append((anchor, title))
        self.parts.append(f'<h2 id="{esc(anchor)}">{esc(title)}</h2>')

    def add(self, fragment: str) -> None:
        """Append already-escaped HTML."""
        self.parts.append(fragment)

    def figure(self, fig: go.Figure | None) -> None:
        if fig is None:
            return
        self._n += 1
        div = f"fig-{self._n}"
        self.parts.append(
            f'<div id="{div}" class="plot"></div>'
            f'<script type="application/json" class="figure-data" data-target="{div}">'
            f"{script_json(fig.to_json())}</script>"
        )

    def render(self, subtitle: str = "") -> str:
        nav = " ".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in self.nav)
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{esc(self.title)}</title><style>{CSS}</style>"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
            f'<h1>{esc(self.title)}</h1><p class="muted">{esc(subtitle)}</p><nav>{nav}</nav>'
            + "\n".join(self.parts)
            + f"<script>{BOOT}</script></body></html>\n"
        )


def summary_table(columns: list[str], table: list[dict[str, Any]], params: list[str]) -> str:
    """Overview: one row per scenario with throughput, p50/p99 latencies, errors, SLO."""
    head = (
        [
            "scenario",
            *params,
            "req/s",
            "output tok/s",
            "goodput req/s",
            "completed",
            "failed",
            "error rate",
        ]
        + [f"{LATENCY_NAMES[m]} {s}" for m in METRICS for s in ("p50", "p99")]
        + ["SLO"]
    )
    # embeddings/rerank runs: items/s and latency of the pooling requests, before the SLO
    pooling = [c for c in columns if c.startswith("pooling_")]
    head[-1:-1] = [c[len("pooling_") :].replace("_", " ") for c in pooling]
    out = ['<div class="scroll"><table><tr>']
    out += [f'<th class="{"l" if i == 0 else ""}">{esc(h)}</th>' for i, h in enumerate(head)]
    out.append("</tr>")
    for r in table:
        cells = [f'<td class="l">{esc(r["scenario"])}</td>']
        cells += [f"<td>{fmt(r.get(p))}</td>" for p in params]
        cells += [
            f"<td>{fmt(r.get(k))}</td>"
            for k in (
                "request_throughput",
                "output_throughput",
                "request_goodput",
                "completed",
                "failed",
            )
        ]
        er = r.get("error_rate")
        cells.append(
            f"<td>{'–' if not isinstance(er, float) or math.isnan(er) else f'{100 * er:.2f} %'}</td>"
        )
        cells += [
            f"<td>{fmt(r.get(metric_column(m, s)))}</td>" for m in METRICS for s in ("p50", "p99")
        ]
        cells += [f"<td>{fmt(r.get(c))}</td>" for c in pooling]
        cells.append(f"<td>{slo_badge(r.get('slo_passed'))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
        if r.get("no_data"):
            out.append(
                f'<tr class="nodata"><td class="l muted" colspan="{len(head)}">'
                f"no data: {esc(r['no_data'])}</td></tr>"
            )
    out.append("</table></div>")
    return "".join(out)


def slo_badge(passed: Any) -> str:
    if passed is True:
        return '<span class="pass">PASS</span>'
    if passed is False:
        return '<span class="fail">FAIL</span>'
    return '<span class="muted">none</span>'


def scenario_card(sc: Scenario, row: dict[str, Any]) -> str:
    """The table per scenario: parameters, latency matrix, SLO results, errors."""
    out = [f'<div class="card"><h3 id="{esc(anchor(sc))}">{esc(sc.name)}</h3>']
    params = {k: v for k, v in sc.params.items() if k not in ("name", "order")}
    if params:
        out.append(
            "<p>"
            + ", ".join(
                f"<code>{esc(k)}={esc(json.dumps(v, default=str))}</code>"
                for k, v in params.items()
            )
            + "</p>"
        )
    out.append('<table><tr><th class="l">ms</th>')
    out += [f"<th>{s}</th>" for s in STATS]
    out.append("</tr>")
    for m in METRICS:
        out.append(f'<tr><td class="l">{LATENCY_NAMES[m]}</td>')
        out += [f"<td>{fmt(row.get(metric_column(m, s)))}</td>" for s in STATS]
        out.append("</tr>")
    out.append("</table>")
    out.append(
        "<p>"
        f"{fmt(row.get('request_throughput'))} req/s, {fmt(row.get('output_throughput'))} output tok/s, "
        f"goodput {fmt(row.get('request_goodput'))} req/s, {fmt(row.get('completed'))} completed, "
        f"{fmt(row.get('failed'))} failed over {fmt(row.get('duration'))} s</p>"
    )
    out.append(client_health_line(sc.summary))
    out.append(prefix_cache_table(sc))
    out.append(group_tables(sc.summary, fmt))  # by name / model / turn, when several
    slo = sc.summary.get("slo") or []
    if slo:
        out.append('<table><tr><th class="l">SLO</th><th>measured</th><th>result</th></tr>')
        for s in slo:
            out.append(
                f'<tr><td class="l">{esc(s.get("expr"))}</td><td>{fmt(s.get("value"))}</td>'
                f"<td>{slo_badge(bool(s.get('passed')))}</td></tr>"
            )
        out.append("</table>")
    errors = sc.summary.get("errors") or sc.samples.errors
    if errors:
        out.append('<table><tr><th class="l">error</th><th>count</th></tr>')
        for msg, n in sorted(
            errors.items(), key=lambda kv: -kv[1] if isinstance(kv[1], int) else 0
        )[:20]:
            out.append(f'<tr><td class="l">{esc(msg)}</td><td>{fmt(n)}</td></tr>')
        out.append("</table>")
    out.append("</div>")
    return "".join(out)


def _pct(v: Any) -> str:
    return fmt(100 * v) + " %" if isinstance(v, (int, float)) else fmt(None)


def client_health_line(s: dict[str, Any]) -> str:
    """Whether the load generator's own numbers can be trusted in this scenario: its stamp
    mode, the summary's client-health figures and its verdict (client-bound, or reads
    delayed by the host), so a comparison is not read off a starved or busy client."""
    if s.get("timestamps") is None and s.get("client_cpu_share") is None:
        return ""  # a summary from before these fields
    kernel = s.get("timestamps") == "kernel"
    parts = [f"{esc(s.get('timestamps') or 'user')} stamps"]
    if kernel:
        parts.append(f"own stamp {_pct(s.get('client_own_stamp'))}")
        parts.append(f"late shared reads {_pct(s.get('client_late_shared_share'))}")
        parts.append(f"read lateness p99 {fmt(s.get('p99_read_lateness_ms'))} ms")
    parts.append(f"CPU {_pct(s.get('client_cpu_share'))}")
    parts.append(f"waited for a CPU {_pct(s.get('client_runqueue_share'))}")
    verdict = ""
    if s.get("client_bound"):
        verdict = f' <span class="fail">client-bound</span>: {esc(s.get("client_bound_reason"))}'
    elif s.get("client_read_delay"):
        verdict = f' <span class="fail">delayed</span>: {esc(s.get("client_read_delay"))}'
    return f'<p class="client-health">Load generator: {", ".join(parts)}.{verdict}</p>'


def prefix_cache_table(sc: Scenario) -> str:
    """Prefix-cache hits as the client saw them (``usage.prompt_tokens_details``) and as each
    replica counted them (vLLM's counters over the scenario's scrapes); empty when neither."""
    s = sc.summary
    rows = []
    if s.get("prefix_cache_hit_rate") is not None:
        rows.append(("client (usage)", s.get("total_cached_tokens"), s["prefix_cache_hit_rate"]))
    for name, pc in prefix_cache_by_replica(sc.server).items():
        rows.append((f"server {name}", pc["hits"], pc["hit_rate"]))
    if not rows:
        return ""
    out = ['<table class="prefix-cache"><tr><th class="l">prefix cache</th>'
           "<th>cached tokens</th><th>hit rate</th></tr>"]  # fmt: skip
    for who, hits, rate in rows:
        out.append(
            f'<tr><td class="l">{esc(who)}</td><td>{fmt(hits)}</td><td>{_pct(rate)}</td></tr>'
        )
    out.append("</table>")
    return "".join(out)


def anchor(sc: Scenario) -> str:
    return "sc-" + "".join(c if c.isalnum() else "-" for c in sc.name)


def sweep_text(sweep: Sweep) -> str:
    """The sentences under a sweep plot: knee and max load meeting the SLO per curve."""
    items = []
    for c in sweep.curves:
        knee = (
            f"saturation knee at <b>{esc(sweep.axis)} = {fmt(c.knee.x)}</b> "
            f"({fmt(c.knee.y)} output tok/s)"
            if c.knee
            else "no knee within the tested range (throughput still rising nearly linearly)"
        )
        if not c.slo_defined:
            slo = "no SLO set"
        elif c.max_slo_x is None:
            slo = f'<span class="fail">no tested {esc(sweep.axis)} meets the SLO</span>'
        else:
            slo = f"max {esc(sweep.axis)} meeting the SLO: <b>{fmt(c.max_slo_x)}</b>"
        reps = {len(s.repeats) for s in c.scenarios if s.repeats}
        if reps:
            knee += (
                f" (each point the mean of {'/'.join(str(n) for n in sorted(reps))} repeats"
                " with its 95% CI; knee on the means)"
            )
        items.append(f"<li>{esc(c.label)}: {knee}; {slo}</li>")
    return "<ul>" + "".join(items) + "</ul>"


def _ci_cell(v: Any, ci: Any) -> str:
    if not ci or None in ci:
        return fmt(v)
    return f"{fmt(v)} &plusmn; {fmt((ci[1] - ci[0]) / 2)}"


def comparison_block(c: Comparison) -> str:
    """The baseline-vs-candidate table with ratios (mean &plusmn; 95 % CI half-width and a
    significance column when both ran with repeats; "single run" otherwise), then the
    bootstrap CIs of p50/p99 differences."""
    nb, nc = len(c.baseline.repeats) or 1, len(c.candidate.repeats) or 1
    how = (
        f"means over {nb} / {nc} repeats &plusmn; 95% CI half-width; significant = CIs do not overlap"
        if c.repeated
        else "single run: no between-run spread, differences are not tested"
    )
    out = [
        f"<h3>{esc(c.candidate.name)} vs baseline {esc(c.baseline.name)}</h3>",
        f'<p class="muted repeats-note">{how}</p>',
        f'<table class="comparison"><tr><th class="l">metric</th><th>{esc(c.baseline.name)}</th>'
        f"<th>{esc(c.candidate.name)}</th><th>ratio</th><th>significant</th></tr>",
    ]
    for r in c.ratios:
        ratio = r["ratio"]
        cls = ""
        sig = r.get("significant")
        if isinstance(ratio, float) and not math.isnan(ratio) and abs(ratio - 1) > 0.02:
            better = (ratio > 1) == r["higher_is_better"]
            cls = "better" if better else "worse"
            if c.repeated and sig is not True:
                cls = ""  # within the repeats' spread: not coloured as a difference
        verdict = r.get("note") or ("yes" if sig else "no")
        out.append(
            f'<tr><td class="l">{esc(r["label"])}</td>'
            f"<td>{_ci_cell(r['baseline'], r.get('baseline_ci95'))}</td>"
            f'<td>{_ci_cell(r["candidate"], r.get("candidate_ci95"))}</td><td class="{cls}">'
            f"{'–' if not isinstance(ratio, float) or math.isnan(ratio) else f'{ratio:.2f}×'}</td>"
            f'<td class="sig">{verdict}</td></tr>'
        )
    out.append("</table>")
    if c.diffs:
        level = int(round(100 * c.diffs[0][1].level))
        out.append(
            f'<table><tr><th class="l">difference (candidate − baseline)</th><th>baseline ms</th>'
            f"<th>candidate ms</th><th>diff ms</th><th>{level}% CI</th><th>n</th></tr>"
        )
        for m, d in c.diffs:
            cls = ("worse" if d.lo > 0 else "better") if d.significant else ""
            out.append(
                f'<tr><td class="l">{LATENCY_NAMES[m]} p{100 * d.q:g}</td><td>{fmt(d.baseline)}</td>'
                f'<td>{fmt(d.candidate)}</td><td class="{cls}">{fmt(d.diff)}</td>'
                f"<td>[{fmt(d.lo)}, {fmt(d.hi)}]</td><td>{d.n_baseline:,} / {d.n_candidate:,}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append('<p class="muted">no records.jsonl samples: no confidence intervals</p>')
    return "".join(out)
