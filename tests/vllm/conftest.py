"""One real vLLM server for the whole test run, started by locust-llm's own backend stack.

The session fixture builds the same CPU plan `--llm-backend cpu` builds (numactl binding, the
OMP bind list, LD_PRELOAD of tcmalloc and libiomp5, VLLM_API_KEY), forces nginx in front of the
single replica, and starts it with `Stack`: so the start itself proves that the plan launches
real vLLM. Every test here then talks to that one server (a start costs ~60-70 s on 2 cores).

Tests skip, with the reason, only when the vLLM venv or the tiny model is absent; under CI
(CI=true), where setup builds both, their absence is a failure instead.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from locust_llm.backends import Stack, install, make_plan

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "models" / "tiny-llama"
MODEL = "tiny"
API_KEY = "sk-vllm-test-key"
MAX_MODEL_LEN = 512
# eager mode: torch.compile of the model takes ~25 s of a ~50 s start on 2 cores and changes
# nothing the tests look at (wire format, usage, metrics, errors)
SERVE_ARGS = [
    "--max-model-len",
    str(MAX_MODEL_LEN),
    "--max-num-seqs",
    "32",
    "--enforce-eager",
    # as the answers in tests/fixtures/vllm/ were recorded (plans turn it on by default)
    "--no-enable-prompt-tokens-details",
]
LOCUST = [sys.executable, "-m", "locust"]


def vllm_missing() -> str | None:
    """Why the real-vLLM tier cannot run here, or None."""
    found = install.find_vllm()
    if found is None:
        return f"vLLM is not installed ({install.INSTALL_HINT})"
    problem = install.check_model(str(MODEL_DIR))
    if problem:
        return problem
    return None


def require_vllm() -> install.VllmInstall:
    why = vllm_missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"real vLLM tier cannot run under CI: {why}")
        pytest.skip(why)
    return install.find_vllm()


def cpu_plan(**kw):
    """The plan `--llm-backend cpu --llm-model models/tiny-llama` makes here, small KV cache."""
    args = dict(
        backend="cpu",
        model=str(MODEL_DIR),
        kvcache_gib=1,
        serve_args=SERVE_ARGS,
        models=[{"name": MODEL, "model": str(MODEL_DIR)}],
    )
    args.update(kw)
    return make_plan(**args)


@pytest.fixture(scope="session")
def vllm_stack(tmp_path_factory):
    require_vllm()
    run_dir = tmp_path_factory.mktemp("vllm-stack")
    plan = cpu_plan(use_nginx=True)
    t0 = time.monotonic()
    stack = Stack(plan, run_dir, api_key=API_KEY, ready_timeout=400, log=lambda m: None)
    stack.start()
    stack.start_s = time.monotonic() - t0
    sys.stderr.write(f"\nreal vLLM stack up in {stack.start_s:.1f}s at {stack.url}\n")
    (run_dir / "plan.txt").write_text(plan.describe(API_KEY))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def replica_url(vllm_stack) -> str:
    return vllm_stack.replicas[0].url


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


def read_records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
