"""Every summary field that vLLM's `calculate_metrics` also computes agrees with it.

Runs for a real-vLLM run and for emulator runs with user and kernel stamps. On purpose, with
kernel stamps, the ITL fields differ: gaps between tokens that arrived in one read share one
kernel stamp and are left out of our ITL percentiles (counted as `itl_excluded`), while vLLM
pools every gap; TPOT/E2E/TTFT are unaffected.
"""

from __future__ import annotations

import json

import pytest

from . import parity
from .conftest import API_KEY, MODEL, require_vllm
from .helpers import locust, records

KERNEL_ITL = "kernel stamps: gaps of tokens sharing one read are excluded from ITL"


def _run(tmp_path, host_args, stamps):
    out = tmp_path
    done = locust([
        "-f", "locustfiles/chat.py", "--headless", "-u", "8", "-r", "8", "-t", "6s",
        "--stop-timeout", "10", "--llm-max-tokens", "24", "--llm-ignore-eos",
        "--llm-timestamps", stamps, "--llm-records", str(out / "r.jsonl"),
        "--llm-summary", str(out / "s.json"), *host_args,
    ])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "s.json").read_text())
    recs = [r for r in records(out / "r.jsonl") if not r.get("warmup") and not r.get("aborted")]
    return summary, recs


def _check(summary, recs, skip=None):
    theirs = parity.vllm_metrics(recs, summary["duration"])
    bad = parity.compare(summary, theirs, skip)
    assert not bad, "fields that differ from vLLM's calculate_metrics:\n" + "\n".join(
        f"  {k}: {v}" for k, v in sorted(bad.items())
    )


def test_real_vllm_run(vllm_stack, tmp_path):
    args = ["--host", vllm_stack.url, "--llm-api-key", API_KEY, "--llm-model", MODEL]
    summary, recs = _run(tmp_path, args, "user")
    _check(summary, recs)


@pytest.mark.parametrize("stamps", ["user", "kernel"])
def test_emulator_run(tmp_path, stamps):
    require_vllm()
    summary, recs = _run(tmp_path, ["--llm-serve-args", "--emu-ttft-ms 20 --emu-itl-ms 5"], stamps)
    skip = None
    if stamps == "kernel" and summary.get("itl_excluded"):
        skip = {f: KERNEL_ITL for f in summary if f.endswith("_itl_ms")}
    _check(summary, recs, skip)
