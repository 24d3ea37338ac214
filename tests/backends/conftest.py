"""Shared fixtures: topology fixture trees and the emulator command for lifecycle tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from locust_llm.backends import Topology
from locust_llm.backends.gpu import parse_gpu_topology
from locust_llm.backends.topology import read_cpu_topology

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "topology"
sys.path.insert(0, str(FIXTURES))
from make_fixtures import materialize  # noqa: E402


@pytest.fixture
def sysfs(tmp_path):
    """sysfs("sysfs-2s96c-2numa") -> a materialized sysfs root for that fixture."""

    def make(name: str) -> Path:
        dump = FIXTURES / (name if name.endswith(".txt") else name + ".txt")
        return materialize(dump, tmp_path / dump.stem)

    return make


@pytest.fixture
def cpu_topo(sysfs):
    return lambda name: Topology(cpu=read_cpu_topology(sysfs(name)))


def gpu_fixture(name: str):
    d = FIXTURES / name
    return parse_gpu_topology((d / "query-gpu.csv").read_text(), (d / "topo-m.txt").read_text())


def emulator_cmd() -> list[str]:
    """The real emulator (`python -m locust_llm.emulator`), run by this interpreter."""
    return [sys.executable, "-m", "locust_llm.emulator"]


@pytest.fixture(autouse=True)
def _host_without_vllm(monkeypatch, request):
    """Plans here describe a host with no vLLM and no tcmalloc, so they read the same on every
    machine; tests/backends/test_install.py covers discovery on a host that has them."""
    if request.node.get_closest_marker("real_install"):
        return
    from locust_llm.backends import install

    monkeypatch.setattr(install, "find_vllm", lambda *a, **k: None)
    monkeypatch.setattr(install, "tcmalloc", lambda: None)
