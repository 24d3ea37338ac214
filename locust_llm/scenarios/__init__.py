"""Scenario files -> run matrix -> runs -> report (`locust-llm run`).

Modules: `spec` (TOML, validation, matrix expansion), `scrape` (server metrics sampler),
`runner` (one scenario's lifecycle), `cli` (`main`, resume), `search` (`locust-llm
search`), `command` (what both share: arguments, overrides, exit codes, the report).
"""

from __future__ import annotations

from .cli import main, run_all
from .spec import ScenarioError, ScenarioSpec, load_file, parse_duration

__all__ = ["ScenarioError", "ScenarioSpec", "load_file", "main", "parse_duration", "run_all"]
