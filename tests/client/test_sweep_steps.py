"""A stepped sweep keeps each step's metrics apart in the summary."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sweep_steps_are_summarised_separately(tmp_path):
    summary = tmp_path / "sweep" / "summary.json"
    p = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "locustfiles/sweep.py", "--headless",
         "--llm-sweep-users", "1,6", "--llm-sweep-hold", "3", "--llm-max-tokens", "8",
         "--llm-serve-args", "--emu-ttft-ms 20 --emu-itl-ms 10", "--stop-timeout", "2",
         "--llm-summary", str(summary)],
        cwd=ROOT, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    s = json.loads(summary.read_text())
    steps = s["steps"]
    assert [st["users"] for st in steps] == [1, 6]
    assert all(st["completed"] > 0 for st in steps)
    assert sum(st["completed"] for st in steps) <= s["completed"]
    # six closed-loop users against an unsaturated server: several times the throughput
    assert steps[1]["request_throughput"] > 3 * steps[0]["request_throughput"]
    assert steps[0]["median_ttft_ms"] > 0 and steps[1]["p99_itl_ms"] > 0

    # the console shows the curve, one line per step
    out = p.stderr.splitlines()
    at = next(i for i, ln in enumerate(out) if "Sweep steps" in ln)
    assert out[at + 1].split()[:3] == ["users", "req/s", "out"]
    for line, st in zip(out[at + 2 : at + 4], steps):
        assert line.split()[:2] == [str(st["users"]), f"{st['request_throughput']:.2f}"]

    # and the report has it as a sweep over users
    from locust_llm.report.cli import main as report

    assert report([str(summary.parent), "--resamples", "10"]) == 0
    doc = json.loads((summary.parent / "report" / "summary.json").read_text())
    (curve,) = [c for c in doc["sweeps"] if c["axis"] == "users (steps)"]
    assert curve["x"] == [1, 6] and curve["label"] == "sweep (stepped)"
    assert curve["output_throughput"] == [st["output_throughput"] for st in steps]
    html = (summary.parent / "report" / "report.html").read_text()
    assert "users (steps) sweep" in html and "Sweeps" in html
