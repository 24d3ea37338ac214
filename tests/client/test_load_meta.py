"""The summary and the console say what load produced them, in vllm bench serve's terms."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from locust_llm.load_meta import describe_load, traffic_lines

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, args: list[str]) -> tuple[dict, str]:
    summary = tmp_path / "s.json"
    p = subprocess.run(
        [sys.executable, "-m", "locust", *args, "--headless", "-u", "4", "-r", "4", "-t", "3s",
         "--llm-max-tokens", "4", "--llm-serve-args", "--emu-ttft-ms 20 --emu-itl-ms 5",
         "--llm-summary", str(summary)],
        cwd=ROOT, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(summary.read_text()), p.stderr


def test_open_loop_run_records_its_rate_burstiness_and_cap(tmp_path):
    t0 = time.time()
    s, log = _run(tmp_path, ["-f", "locustfiles/rate.py", "--llm-rate", "5", "--llm-arrival",
                             "gamma", "--llm-burstiness", "0.5", "--llm-max-inflight", "3"])  # fmt: skip
    m = s["meta"]
    assert m["request_rate"] == 5.0 and m["burstiness"] == 0.5 and m["arrival"] == "gamma"
    assert m["max_concurrency"] == 3 and m["users"] == 4
    assert m["model_id"] == m["model"] and m["model_id"]
    assert m["num_prompts"] == s["total_requests"] > 0
    assert m["dataset"] == "synthetic" and m["prompt_tokens"] == 128 and m["max_tokens"] == 4
    assert abs(time.mktime(time.strptime(m["date"], "%Y%m%d-%H%M%S")) - t0) < 30
    # vLLM's lines: before the load, and in the result block
    assert "Traffic request rate: 5.0" in log
    assert "Burstiness factor: 0.5 (Gamma distribution)" in log
    assert "Maximum request concurrency: 3" in log
    block = log[log.index("LLM Benchmark Result") :]
    assert "Maximum request concurrency:             3" in block
    assert "Request rate configured (RPS):           5.00" in block


def test_closed_loop_run_is_rate_inf_with_users_as_the_cap(tmp_path):
    s, log = _run(tmp_path, ["-f", "locustfiles/chat.py"])
    m = s["meta"]
    assert m["request_rate"] == "inf" and m["arrival"] == "closed-loop"
    assert m["max_concurrency"] == 4 and m["burstiness"] is None
    assert "Traffic request rate: inf" in log and "Maximum request concurrency: 4" in log
    assert "Request rate configured" not in log


@pytest.mark.parametrize(
    "arrival, burst, text",
    [("poisson", 1.0, "Poisson process"), ("gamma", 1.0, "Poisson process"),
     ("constant", 1.0, "constant intervals")],
)  # fmt: skip
def test_arrival_process_is_named_as_vllm_names_it(arrival, burst, text):
    class Opts:
        llm_rate, llm_arrival, llm_burstiness, llm_max_inflight = 2.0, arrival, burst, 0
        llm_dataset = "/data/sharegpt.json"

    load = describe_load(Opts, open_loop=True, users=8, num_requests=10, model="m")
    assert traffic_lines(load)[1] == f"Burstiness factor: {burst} ({text})"
    assert load["max_concurrency"] == 8 and load["prompt_tokens"] is None
    assert load["dataset"] == "/data/sharegpt.json"
