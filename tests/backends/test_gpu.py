import pytest

from locust_llm.backends import BackendError, Topology, make_plan
from locust_llm.backends.gpu import (
    Gpu,
    GpuTopology,
    choose_groups,
    link_rank,
    parse_topo_matrix,
    read_gpu_topology,
)

from .conftest import gpu_fixture


def test_h200_real_output():
    t = gpu_fixture("h200x2")
    assert [g.index for g in t.gpus] == [0, 1]
    assert t.gpus[1].uuid == "GPU-c35d742e-8b7d-6547-4c4e-733972d3b872"
    assert t.gpus[0].name == "NVIDIA H200" and t.gpus[0].memory_mib == 143771
    assert t.gpus[0].pci_bus_id == "00000000:00:06.0"
    assert t.link(0, 1) == "NV18" and t.nvlinked(1, 0)
    assert choose_groups(t, 1) == [[0], [1]]
    assert choose_groups(t, 2) == [[0, 1]]


def test_ansi_header_is_stripped():
    text = "\t\x1b[4mGPU0\tGPU1\tCPU Affinity\x1b[0m\nGPU0\t X \tPHB\t0-7\nGPU1\tPHB\t X \t0-7\n"
    assert parse_topo_matrix(text) == {(0, 1): "PHB", (1, 0): "PHB"}


def test_link_rank_order():
    cells = ["SYS", "NODE", "PHB", "PXB", "PIX", "NV1", "NV18"]
    assert sorted(cells, key=link_rank) == cells


def test_eight_nvlink():
    t = gpu_fixture("gpu-8nvlink")
    assert len(t.gpus) == 8 and all(t.nvlinked(0, j) for j in range(1, 8))
    assert choose_groups(t, 2) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert choose_groups(t, 4) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert choose_groups(t, 8) == [list(range(8))]
    assert choose_groups(t, 2, replicas=2) == [[0, 1], [2, 3]]


def test_four_pcie_prefers_shared_switch():
    t = gpu_fixture("gpu-4pcie")
    assert not any(t.nvlinked(a, b) for a in range(4) for b in range(4))
    assert t.link(0, 1) == "PIX" and t.link(1, 2) == "SYS"
    assert choose_groups(t, 2) == [[0, 1], [2, 3]]
    assert choose_groups(t, 3) == [[0, 1, 2]]  # one leftover GPU


def test_nvlink_pairs_out_of_index_order():
    gpus = tuple(Gpu(i, f"u{i}", "X", 1, "b") for i in range(4))
    links = {}
    for a in range(4):
        for b in range(4):
            if a != b:
                links[(a, b)] = "NV4" if {a, b} in ({0, 2}, {1, 3}) else "SYS"
    t = GpuTopology(gpus, links)
    assert choose_groups(t, 2) == [[0, 2], [1, 3]]
    assert choose_groups(t, 2, replicas=1) == [[0, 2]]


def test_too_few_gpus():
    with pytest.raises(BackendError, match="tp=4 needs 4 GPUs"):
        choose_groups(gpu_fixture("h200x2"), 4)
    with pytest.raises(BackendError, match="lower --replicas"):
        choose_groups(gpu_fixture("h200x2"), 1, replicas=3)


def test_no_nvidia_smi_says_no_gpus(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackendError, match="no GPUs found"):
        read_gpu_topology()
    with pytest.raises(BackendError, match="no GPUs found"):
        make_plan("gpu", "m", topology=Topology(), base_port=9000)


def test_runner_injection():
    q = "0, GPU-a, NVIDIA L4, 23034, 00000000:01:00.0\n"
    outs = {"--query-gpu": q, "topo": "\tGPU0\nGPU0\t X \n"}
    t = read_gpu_topology(runner=lambda argv: outs[argv[1].split("=")[0]], nvidia_smi="nvidia-smi")
    assert [g.name for g in t.gpus] == ["NVIDIA L4"]


def test_device_run_recorded():
    """The device machine's own nvidia-smi output parses, and its recorded run passed."""
    import json

    from .conftest import FIXTURES

    t = gpu_fixture("h200x2-device")
    assert len(t.gpus) == 2 and t.link(0, 1) == "NV18"
    res = json.loads((FIXTURES / "h200x2-device" / "gpu_check.json").read_text())
    assert res["ok"]
    seen = {
        (run["tp"], r["reported_cuda_visible_devices"])
        for run in res["runs"]
        for r in run["replicas"]
    }
    assert seen == {(1, "0"), (1, "1"), (2, "0,1")}
