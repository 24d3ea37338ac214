"""A stepped sweep keeps each step's metrics apart in the summary (issue 6: shapes)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sweep_steps_are_summarised_separately(tmp_path):
    summary = tmp_path / "s.json"
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
