"""The report of an embeddings run: the summary's pooling section in summary.csv and the HTML."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from locust_llm.metrics.collector import Collector
from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.summary import summarize
from locust_llm.report.build import build_report


def test_pooling_columns_from_the_summary(tmp_path: Path):
    c = Collector()
    for i in range(50):
        r = LLMResult(name="/v1/embeddings", t_start=1_700_000_000 + i / 20, items=8, status=200)
        r.e2e = r.stream_closed = 10.0 + i
        r.prompt_tokens = 100
        c.add(r)
    s = summarize(c, meta={"model": "m"})
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps(s))
    html = build_report([run], tmp_path / "out", resamples=20)
    with (tmp_path / "out" / "summary.csv").open() as fh:
        (row,) = list(csv.DictReader(fh))
    for k in ("items_per_s", "input_tokens_per_s", "median_latency_ms", "p99_latency_ms"):
        assert float(row[f"pooling_{k}"]) == float(f"{s['pooling'][k]:.6g}"), k
    assert float(row["pooling_median_latency_ms"]) == 34.5  # median of 10..59 ms
    text = html.read_text()
    assert "items per s</th>" in text and "p99 latency ms</th>" in text
