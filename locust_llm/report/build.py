"""Assemble a report from run directories: summary.csv, summary.json and report.html.

One function, `build_report`, used both by `locust-llm report` and at the end of
`locust-llm run`, so a rebuilt report is the same as the one written after the run.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from .. import __version__
from . import figures, html
from .compare import comparisons
from .gpu import gpu_figure, gpu_text
from .groups import GROUPS_CSV, write_group_csv
from .load import Scenario, is_scenario_dir, load_runs
from .repeats import repeat_groups, repeats_table
from .searches import load_searches, search_figure, search_text
from .sweeps import find_sweeps
from .tables import rows, varying_params, write_csv

REPORT_HTML = "report.html"
SUMMARY_CSV = "summary.csv"
SUMMARY_JSON = "summary.json"


def _clean(v: Any) -> Any:
    """JSON without NaN (not valid JSON): NaN becomes null."""
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def build_report(
    run_dirs: list[Path],
    out: Path,
    *,
    baseline: str | None = None,
    resamples: int = 1000,
    title: str | None = None,
) -> Path:
    """Write report.html, summary.csv and summary.json into `out`; returns report.html.

    Raises ValueError when no scenario directory (one with a summary.json) is found.
    """
    run_dirs = [Path(d) for d in run_dirs]
    scenarios = load_runs(run_dirs)
    if not scenarios:
        raise ValueError(
            "no scenario results found (a scenario directory holds summary.json) under: "
            + ", ".join(str(d) for d in run_dirs)
        )
    out = Path(out)
    if is_scenario_dir(out):
        raise ValueError(f"{out} holds a scenario's own summary.json; write the report elsewhere")
    out.mkdir(parents=True, exist_ok=True)
    columns, table = rows(scenarios)
    params = varying_params(scenarios)
    write_csv(out / SUMMARY_CSV, columns, table)
    write_group_csv(out / GROUPS_CSV, scenarios)  # by name / model / turn, when any
    sweeps = find_sweeps(scenarios)
    comps = comparisons(scenarios, baseline, resamples=resamples)
    run_ids = list(dict.fromkeys(s.run_id for s in scenarios))
    doc = {
        "generated_at": time.time(),
        "locust_llm_version": __version__,
        "runs": run_ids,
        "scenarios": table,
        "sweeps": [c.to_json(sw.axis) for sw in sweeps for c in sw.curves],
        "comparisons": [c.to_json() for c in comps],
    }
    reps = repeat_groups(scenarios)
    if reps:
        doc["repeats"] = reps
    searches = load_searches(run_dirs)
    if searches:
        doc["search"] = searches[0] if len(searches) == 1 else searches
    (out / SUMMARY_JSON).write_text(json.dumps(_clean(doc), indent=2, default=str) + "\n")
    path = out / REPORT_HTML
    page = render(scenarios, table, columns, params, sweeps, comps, run_ids, title, searches, reps)
    path.write_text(page)
    return path


def render(
    scenarios: list[Scenario],
    table,
    columns,
    params,
    sweeps,
    comps,
    run_ids,
    title,
    searches=(),
    reps=(),
) -> str:
    page = html.Page(title or f"locust-llm report: {', '.join(run_ids)}")
    page.section("summary", "Summary")
    page.add(html.summary_table(columns, table, params))
    if searches:
        page.section("search", "Search")
        for res in searches:
            page.figure(search_figure(res))
            page.add(search_text(res))
    if reps:
        page.section("repeats", "Repeats")
        page.add(repeats_table(reps))
        page.add(
            '<p class="muted">Across repeats: mean, CV = s/mean, 95% CI = mean &plusmn; '
            "t(0.975, N-1)&middot;s/&radic;N over the repeats' own values.</p>"
        )
    if sweeps:
        page.section("sweeps", "Sweeps")
        for sw in sweeps:
            page.add(f"<h3>{html.esc(sw.axis)} sweep</h3>")
            page.figure(figures.sweep_figure(sw))
            page.add(html.sweep_text(sw))
        page.add(
            '<p class="muted">Knee: Kneedle on the running maximum of output throughput '
            "(the point farthest above the chord from the first to the last load, when at least "
            "0.1 of the normalised range). Max load meeting the SLO: the highest tested value "
            "where every SLO passed and every lower value passed too.</p>"
        )
    if comps:
        page.section("comparison", "Comparison")
        for c in comps:
            page.add(html.comparison_block(c))
        page.add(
            '<p class="muted">Ratios: candidate / baseline from summary.json. CIs: percentile '
            "bootstrap over requests in records.jsonl, seeded, both runs resampled independently; "
            "green = candidate better and CI excludes 0, red = worse.</p>"
        )
    cdf = figures.cdf_figure(scenarios)
    if cdf is not None:
        page.section("cdf", "Latency distributions")
        page.figure(cdf)
    page.section("timeseries", "Time series")
    for sc in scenarios:
        fig = figures.timeseries_figure(sc)
        page.add(f"<h3>{html.esc(sc.name)}</h3>")
        if fig is None:
            page.add('<p class="muted">no per-second intervals or server metrics</p>')
        page.figure(fig)
    with_gpu = [
        sc for sc in scenarios if sc.gpu_samples or (sc.summary.get("gpu") or {}).get("gpus")
    ]
    if with_gpu:
        page.section("gpu", "GPU telemetry")
        for sc in with_gpu:
            page.add(f"<h3>{html.esc(sc.name)}</h3>")
            page.add(gpu_text(sc))
            page.figure(gpu_figure(sc, figures.scenario_t0(sc)))
    page.section("scenarios", "Scenarios")
    for sc, row in zip(scenarios, table):
        page.add(html.scenario_card(sc, row))
    subtitle = f"generated {time.strftime('%Y-%m-%d %H:%M:%S')} by locust-llm {__version__}"
    return page.render(subtitle)
