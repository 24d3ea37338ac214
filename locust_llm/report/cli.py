"""`locust-llm report RUN_DIR [RUN_DIR ...] [-o OUT]`: rebuild one report or merge several."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .build import build_report
from .load import is_scenario_dir


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="locust-llm report",
        description="Rebuild report.html/summary.csv/summary.json from finished runs; "
        "several runs are merged into one report (scenario names prefixed with the run id).",
    )
    p.add_argument("runs", nargs="+", type=Path, help="run directories (reports/<run-id>)")
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        help="output directory (default: the run directory; for several runs "
        "<parent>/merged-<id>+<id>...)",
    )
    p.add_argument("--baseline", help="scenario to compare the others against (default: first)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--title", help="report title")
    return p


def default_out(runs: list[Path]) -> Path:
    """The run directory itself; `<dir>/report` for a single scenario's directory (a plain
    `locust --llm-summary` output), whose summary.json must not be overwritten."""
    if len(runs) == 1:
        return runs[0] / "report" if is_scenario_dir(runs[0]) else runs[0]
    return runs[0].parent / ("merged-" + "+".join(r.name for r in runs))[:120]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    missing = [str(r) for r in args.runs if not r.is_dir()]
    if missing:
        print(f"locust-llm report: not a directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    out = args.out or default_out(args.runs)
    try:
        path = build_report(
            args.runs, out, baseline=args.baseline, resamples=args.resamples, title=args.title
        )
    except ValueError as e:
        print(f"locust-llm report: {e}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0
