import importlib.util
import json
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_timestamps.py"
spec = importlib.util.spec_from_file_location("bench_timestamps", PATH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_gap_errors_alignment_and_exclusion():
    truth = {"a": [1.000, 1.020, 1.040, 1.060], "b": [2.0, 2.02], "c": [3.0]}
    client = {
        "a": [1.001, 1.0215, 1.041, 1.061],  # gap errors +0.5, -0.5, 0 ms
        "b": [2.0, 2.02, 2.04],  # one more token than the truth: mismatched
        "z": [9.0],  # unknown id: mismatched
    }
    r = bench.gap_errors(client, truth)
    assert r["requests"] == 1 and r["mismatched"] == 2 and r["gaps"] == 3
    assert r["gap_err_max_ms"] == pytest.approx(0.5)
    assert r["gap_err_p50_ms"] == pytest.approx(0.5)
    assert r["arrival_err_p50_ms"] == pytest.approx(1.0)
    # token 1 shared a read: gaps (0,1) and (1,2) are left out
    r = bench.gap_errors(client, truth, {"a": [False, True, False, False]})
    assert r["gaps"] == 1 and r["excluded"] == 2 and r["gap_err_max_ms"] == pytest.approx(0.0)


def test_load_truth_log(tmp_path):
    p = tmp_path / "truth.jsonl"
    p.write_text(
        json.dumps({"id": "chatcmpl-1", "t_arrival": 0.5, "t_send": [1.0, 1.0, 1.02]})
        + "\n\n"
        + json.dumps({"id": "cmpl-2", "t_arrival": 0.6, "t_send": []})
        + "\n"
    )
    assert bench.load_truth_log(p) == {"chatcmpl-1": [1.0, 1.0, 1.02], "cmpl-2": []}
