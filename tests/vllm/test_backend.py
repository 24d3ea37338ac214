"""`locust --llm-backend cpu` end to end on real vLLM: plan, start, run, teardown, nothing left,
and a load generator that reads every stream's end when it arrives.

Runs before the session server starts (file order), so two vLLM servers never share the cores.
"""

from __future__ import annotations

import json
import re

from tests.runs import alive

from .conftest import MODEL_DIR, require_vllm
from .helpers import locust, records


def test_llm_backend_cpu_end_to_end(tmp_path):
    require_vllm()
    run_dir = tmp_path / "backend"
    done = locust(
        ["-f", "locustfiles/chat.py", "--headless", "-u", "8", "-r", "8", "-t", "12s",
         "--llm-backend", "cpu", "--llm-model", str(MODEL_DIR), "--llm-max-tokens", "32",
         "--llm-ignore-eos", "--llm-serve-args", "--max-model-len 512 --enforce-eager",
         "--llm-run-dir", str(run_dir), "--llm-summary", str(tmp_path / "s.json"),
         "--llm-records", str(tmp_path / "r.jsonl"), "--loglevel", "INFO"],
        timeout=400, env={"VLLM_CPU_KVCACHE_SPACE": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stderr.splitlines() if "started a cpu vLLM stack" in x)
    pids = [int(p) for p in re.search(r"pid ([0-9,]+)", line).group(1).split(",")]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["completed"] > 0 and summary["failed"] == 0
    assert summary["total_output_tokens"] == 32 * summary["completed"]
    # the servers share Locust's scheduling group: on these 2 cores a server in a session of
    # its own kept Locust waiting for a CPU most of the run (85 %), and streams that had
    # ended were read 0.1-1 s late in a third to half of the requests
    assert summary["client_runqueue_share"] < 0.5, summary["client_runqueue_share"]
    done_ok = [r for r in records(tmp_path / "r.jsonl") if r["error"] is None]
    late = [r["stream_closed"] - r["e2e"] for r in done_ok if r["stream_closed"] - r["e2e"] > 100]
    assert len(late) <= 0.02 * len(done_ok), (len(done_ok), sorted(late))
    log = next(run_dir.glob("replica-*.log")).read_text()
    assert "NUMA" in log or "membind" in log.lower() or "core" in log.lower()
    assert not [p for p in pids if alive(p)], "vLLM left running after Locust quit"
    import subprocess

    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    assert str(run_dir) not in ps and str(MODEL_DIR) + " --host" not in ps
