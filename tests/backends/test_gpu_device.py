"""On a GPU host: the GPU plan for tp=1 and tp=2 launched with the emulator (skips without GPUs)."""

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.gpu


def _gpus() -> int:
    if shutil.which("nvidia-smi") is None:
        return 0
    r = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return r.stdout.count("GPU ") if r.returncode == 0 else 0


@pytest.mark.skipif(_gpus() == 0, reason="no NVIDIA GPU (nvidia-smi missing or lists none)")
def test_gpu_plans_with_emulator(tmp_path):
    from .gpu_check import run

    res = run(tmp_path)
    assert res["ok"], res
    assert [len(r["replicas"]) for r in res["runs"]][0] == len(res["gpus"])
