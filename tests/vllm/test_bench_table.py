"""The side-by-side table of benchmarks/bench_vs_vllm.py (pure; no vLLM needed)."""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from compare_tables import compare, markdown  # noqa: E402


def test_repeats_are_averaged_per_tool_and_the_ratio_is_ours_over_vllms():
    ours = [{"request_throughput": 20.0, "mean_ttft_ms": 100.0}, {"request_throughput": 30.0}]
    theirs = [{"request_throughput": 20.0, "mean_ttft_ms": 50.0}, {"request_throughput": 20.0}]
    rows = {r["metric"]: r for r in compare(ours, theirs)}
    rt = rows["request_throughput"]
    assert (rt["locust_llm"], rt["vllm"], rt["ratio"]) == (25.0, 20.0, 1.25)
    assert (rt["locust_llm_min"], rt["locust_llm_max"]) == (20.0, 30.0)
    assert rows["mean_ttft_ms"]["ratio"] == 2.0  # a field missing in one repeat is left out
    assert math.isnan(rows["p99_itl_ms"]["ratio"])  # absent from both: no ratio, not zero
    text = markdown(list(rows.values()), "t")
    assert (
        "| request_throughput (req/s) | 20.00 (20.00-20.00) | 25.00 (20.00-30.00) | 1.250 |" in text
    )
    assert "| p99_itl_ms (ms) | - | - | - |" in text
