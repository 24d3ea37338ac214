"""The LLM rows of Locust's stats: ``TTFT``, ``TPOT``, ``ITL`` (type ``LLM``), and per group.

Per-group rows appear once a run has more than one request name (``TTFT short``) or model
(``TTFT model=llama``); a single-name run keeps just the three rows. Values go in on Locust's
rounding grid, so each row's min/max/average and percentiles agree.

Local runs log every request as it finishes. Group rows on a master come from the groups the
workers ship with their LLM metrics (workers never log them), so a group row counts every
request once whichever process ran it and whenever the grouping turned out to have several
values: the rows of the first value are filled in from the run so far at that moment.
"""

from __future__ import annotations

from typing import Any

from locust_llm.locust_stats import log_many
from locust_llm.metrics.locust_grid import on_locust_grid
from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.window import Window

__all__ = ["ROW_METRICS", "ROW_KINDS", "row_name", "log_result", "log_window"]

METHOD = "LLM"
# Locust row -> the window's distribution holding the same values
ROW_METRICS = {"TTFT": "ttft", "TPOT": "tpot", "ITL": "itl"}
ROW_KINDS = ("name", "model")  # groupings with rows of their own (turns: the summary only)


def row_name(metric: str, kind: str | None = None, key: str | None = None) -> str:
    """``TTFT`` for the run, ``TTFT short`` for a request name, ``TTFT model=m`` for a model."""
    if kind is None:
        return metric
    return f"{metric} {key}" if kind == "name" else f"{metric} {kind}={key}"


def log_result(stats: Any, res: LLMResult, groups: list[tuple[str, str]]) -> None:
    """One successful request into the run's rows and those of its groups."""
    ttft, tpot = res.ttft, res.tpot
    itl = res.exact_itl() if res.itl else None
    targets: list[tuple[str | None, str | None]] = [(None, None)]
    targets += [(k, g) for k, g in groups if k in ROW_KINDS]
    for kind, key in targets:
        if ttft is not None:
            stats.get(row_name("TTFT", kind, key), METHOD).log(on_locust_grid(ttft), 0)
        if tpot is not None:
            stats.get(row_name("TPOT", kind, key), METHOD).log(on_locust_grid(tpot), 0)
        if itl:
            log_many(stats.get(row_name("ITL", kind, key), METHOD), itl, on_grid=True)


def log_window(stats: Any, kind: str, key: str, w: Window) -> None:
    """A window's samples into a group's rows (a seed or a worker's report, on the master).
    Sketch-only metrics go in by their buckets' values, within the sketch's bound."""
    if kind not in ROW_KINDS:
        return
    for metric, dist_name in ROW_METRICS.items():
        d = w.sketches[dist_name]
        if not d.count:
            continue
        if d.samples is not None:
            values = [on_locust_grid(v) for v in d.samples]
        else:
            values = [on_locust_grid(v) for v, n in d.buckets() for _ in range(n)]
        log_many(stats.get(row_name(metric, kind, key), METHOD), values)
