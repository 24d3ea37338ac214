"""Side-by-side table of two benchmark tools' summaries (pure: dicts in, rows and text out).

Both tools write vLLM's field names (`request_throughput`, `mean_ttft_ms`, ...), so a metric is
compared by name; repeats are averaged per tool, and the ratio is ours over vLLM's, so 1.00 means
the two tools measured the same thing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

METRICS: tuple[tuple[str, str], ...] = (
    ("request_throughput", "req/s"),
    ("output_throughput", "tok/s"),
    ("mean_ttft_ms", "ms"),
    ("median_ttft_ms", "ms"),
    ("p99_ttft_ms", "ms"),
    ("mean_tpot_ms", "ms"),
    ("median_tpot_ms", "ms"),
    ("p99_tpot_ms", "ms"),
    ("mean_itl_ms", "ms"),
    ("median_itl_ms", "ms"),
    ("p99_itl_ms", "ms"),
    ("mean_e2el_ms", "ms"),
    ("median_e2el_ms", "ms"),
    ("p99_e2el_ms", "ms"),
    ("completed", ""),
    ("total_input_tokens", ""),
    ("total_output_tokens", ""),
)


def _mean(values: Sequence[float]) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.fmean(vals) if vals else math.nan


def compare(ours: Sequence[dict], theirs: Sequence[dict]) -> list[dict]:
    """One row per metric: the mean over repeats of each tool, its spread, and the ratio."""
    rows = []
    for key, unit in METRICS:
        a = [float(s[key]) for s in ours if s.get(key) is not None]
        b = [float(s[key]) for s in theirs if s.get(key) is not None]
        ma, mb = _mean(a), _mean(b)
        rows.append(
            {
                "metric": key,
                "unit": unit,
                "vllm": mb,
                "vllm_min": min(b) if b else math.nan,
                "vllm_max": max(b) if b else math.nan,
                "locust_llm": ma,
                "locust_llm_min": min(a) if a else math.nan,
                "locust_llm_max": max(a) if a else math.nan,
                "ratio": ma / mb if mb and not math.isnan(mb) else math.nan,
            }
        )
    return rows


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "-"
    return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.2f}" if abs(v) >= 10 else f"{v:.3f}"


def _cell(row: dict, tool: str) -> str:
    if math.isnan(row[tool]):
        return "-"
    return f"{_fmt(row[tool])} ({_fmt(row[tool + '_min'])}-{_fmt(row[tool + '_max'])})"


def markdown(rows: Sequence[dict], title: str) -> str:
    """A Markdown table: mean (min-max over repeats) for each tool, and the ratio."""
    out = [
        f"**{title}**",
        "",
        "| metric | vllm bench serve | locust-llm | locust-llm / vLLM |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        name = r["metric"] + (f" ({r['unit']})" if r["unit"] else "")
        v, o = _cell(r, "vllm"), _cell(r, "locust_llm")
        ratio = "-" if math.isnan(r["ratio"]) else f"{r['ratio']:.3f}"
        out.append(f"| {name} | {v} | {o} | {ratio} |")
    return "\n".join(out)
