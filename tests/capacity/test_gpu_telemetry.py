"""GPU telemetry: aggregation from a fixture, the no-GPU path, and (marked gpu) a real NVML
sampler while a CUDA matmul loop runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from locust_llm.telemetry.aggregate import aggregate, read_samples

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "gpu" / "two_gpus.jsonl"


def test_aggregate_counter_integral_tokens_and_replicas():
    rows = read_samples(FIXTURE)  # the torn last line is skipped
    assert len(rows) == 22
    g = aggregate(rows, output_tokens=3000, groups={"r0": [0], "r1": [1]})
    g0, g1 = g["gpus"]
    assert g0["energy_j"] == pytest.approx(3000.0) and g0["energy_source"] == "counter"
    # no counter on GPU 1: 100 W integrated over 5 s
    assert g1["energy_j"] == pytest.approx(500.0) and g1["energy_source"] == "power integral"
    assert g["energy_j"] == pytest.approx(3500.0)
    assert g["energy_per_output_token_j"] == pytest.approx(3500 / 3000)
    assert g["output_tokens_per_s_per_gpu"] == pytest.approx(3000 / 5 / 2)
    assert g["replicas"]["r0"]["energy_j"] == pytest.approx(3000.0)
    assert g["replicas"]["r1"]["mean_util_pct"] == 0
    assert g0["max_util_pct"] == 95 and g1["mean_sm_clock_mhz"] == 360


def test_aggregate_window_bounds():
    g = aggregate(read_samples(FIXTURE), start=1002.0, end=1004.0)
    assert g["gpus"][0]["energy_j"] == pytest.approx(1200.0)  # 4 ticks of 300 J
    assert aggregate([], output_tokens=1)["gpus"] == []


def _has_gpu() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetCount() > 0
    except Exception:
        return False


@pytest.mark.skipif(_has_gpu(), reason="this host has a GPU")
def test_no_gpu_is_one_clear_line(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "locust_llm.telemetry.sampler", str(tmp_path / "g.jsonl")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 3
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("locust-llm: GPU telemetry off: ")
    assert "Traceback" not in p.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not _has_gpu(), reason="no NVIDIA GPU")
def test_sampler_sees_a_cuda_load(tmp_path):
    torch = pytest.importorskip("torch")
    out = tmp_path / "g.jsonl"
    sampler = subprocess.Popen(
        [sys.executable, "-m", "locust_llm.telemetry.sampler", str(out), "--interval", "0.1"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        time.sleep(3)  # idle
        t_load = time.time()
        a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        end = time.monotonic() + float(os.environ.get("GPU_LOAD_S", "10"))
        while time.monotonic() < end:
            for _ in range(20):
                a @ b
            torch.cuda.synchronize()
        t_end = time.time()
    finally:
        sampler.terminate()
        sampler.wait(10)
    rows = read_samples(out)
    idle = aggregate(rows, end=t_load - 0.5)["gpus"][0]
    busy = aggregate(rows, start=t_load + 2, end=t_end)["gpus"][0]
    report = {"idle": idle, "busy": busy}
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_figures.json").write_text(json.dumps(report, indent=2))
    assert busy["mean_util_pct"] > 80 > (idle["mean_util_pct"] or 0) + 30
    assert busy["mean_power_w"] > 1.5 * idle["mean_power_w"]
    assert busy["energy_j"] > 0 and busy["energy_source"] == "counter"
