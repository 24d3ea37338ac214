"""Embeddings and rerank against real vLLM: tiny-llama served as an embedding model.

A pooling model is a second vLLM start (the session server generates, and vLLM gives a
model either the generation or the pooling routes, never both), about 40 s on 2 cores; so
this test is opt-in: ``LOCUST_LLM_VLLM_POOLING=1``. The default run compares the emulator
with real vLLM's recorded pooling answers instead (tests/emulator/test_pooling.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from locust_llm.backends import Stack

from .conftest import ROOT, cpu_plan, require_vllm

pytestmark = pytest.mark.skipif(
    os.environ.get("LOCUST_LLM_VLLM_POOLING") != "1",
    reason="a second vLLM start (~40 s): set LOCUST_LLM_VLLM_POOLING=1",
)


@pytest.fixture(scope="module")
def pooling_url(tmp_path_factory):
    require_vllm()
    plan = cpu_plan(
        serve_args=["--max-model-len", "512", "--max-num-seqs", "8", "--convert", "embed"]
    )
    stack = Stack(plan, tmp_path_factory.mktemp("vllm-pool"), ready_timeout=400, log=lambda m: None)
    t0 = time.monotonic()
    stack.start()
    sys.stderr.write(f"\nreal vLLM pooling server up in {time.monotonic() - t0:.1f}s\n")
    try:
        yield stack.replicas[0].url
    finally:
        stack.stop()


@pytest.mark.parametrize(("locustfile", "batch"), [("embeddings.py", 4), ("rerank.py", 3)])
def test_pooling_locustfiles_against_real_vllm(pooling_url, tmp_path, locustfile, batch):
    p = subprocess.run(
        [sys.executable, "-m", "locust", "-f", f"locustfiles/{locustfile}", "--host",
         pooling_url, "--headless", "-u", "2", "-r", "2", "-t", "4s", "--llm-batch-size",
         str(batch), "--llm-prompt-tokens", "32", "--llm-summary", str(tmp_path / "s.json"),
         "--llm-records", str(tmp_path / "r.jsonl")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads((tmp_path / "s.json").read_text())
    recs = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    ok = [r for r in recs if r["error"] is None and not r["aborted"] and not r["warmup"]]
    lat = np.array([r["e2e"] for r in ok])
    pool = s["pooling"]
    assert pool["requests"] == len(ok) > 0 and pool["failed"] == 0
    assert pool["total_items"] == batch * len(ok)
    # vLLM's own usage: tokens of its tokenizer (BOS included), at least one per input
    assert pool["total_input_tokens"] == sum(r["prompt_tokens"] for r in ok) >= batch * len(ok)
    assert pool["median_latency_ms"] == float(np.percentile(lat, 50))
    assert pool["p99_latency_ms"] == float(np.percentile(lat, 99))
