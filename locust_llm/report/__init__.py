"""Reports: summary CSV/JSON and a self-contained HTML report over finished scenario runs.

`main(argv)` is the `locust-llm report` subcommand; `build_report(run_dirs, out)` is what the
scenario runner calls after a run.
"""

from __future__ import annotations

from .build import build_report
from .cli import main

__all__ = ["build_report", "main"]
