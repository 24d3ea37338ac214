"""Plans per fixture topology vs hand-checked expectations."""

import sys

import pytest

from locust_llm.backends import BackendError, Topology, make_plan

from .conftest import gpu_fixture

EMU = [sys.executable, "-m", "locust_llm.emulator"]


def test_cpu_two_nodes_one_replica_each(cpu_topo):
    p = make_plan(
        "cpu",
        "microsoft/Phi-3.5-mini-instruct",
        topology=cpu_topo("sysfs-2s96c-2numa"),
        base_port=8000,
    )
    assert len(p.replicas) == 2 and p.use_nginx and p.url == "http://127.0.0.1:8000"
    r0, r1 = p.replicas
    assert r0.argv[:4] == ["numactl", "--cpunodebind=0", "--membind=0", "vllm"]
    assert r1.argv[:3] == ["numactl", "--cpunodebind=1", "--membind=1"]
    # 48 physical cores per node, one thread each (no SMT siblings), last one reserved
    assert r0.env["VLLM_CPU_OMP_THREADS_BIND"] == "0-46"
    assert r1.env["VLLM_CPU_OMP_THREADS_BIND"] == "48-94"
    assert r0.env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "1"
    assert r0.env["VLLM_CPU_KVCACHE_SPACE"] == "297"  # 40 % of 743.9 GiB
    assert r0.argv[3:] == [
        "vllm", "serve", "microsoft/Phi-3.5-mini-instruct", "--host", "127.0.0.1", "--port",
        "8001", "--served-model-name", "microsoft/Phi-3.5-mini-instruct", "--dtype", "bfloat16",
        "--enable-prompt-tokens-details",
    ]  # fmt: skip


def test_cpu_four_nodes(cpu_topo):
    p = make_plan(
        "cpu", "m", topology=cpu_topo("sysfs-2s96c-4numa"), base_port=8000, kvcache_gib=40
    )
    assert [r.numa_nodes for r in p.replicas] == [[0], [1], [2], [3]]
    assert [r.omp_bind for r in p.replicas] == ["0-22", "24-46", "48-70", "72-94"]
    assert {r.env["VLLM_CPU_KVCACHE_SPACE"] for r in p.replicas} == {"40"}


def test_cpu_smt_and_reserved(cpu_topo):
    p = make_plan(
        "cpu",
        "m",
        topology=cpu_topo("sysfs-2s96c-2numa"),
        base_port=8000,
        smt=True,
        reserved_cpus=2,
    )
    assert p.replicas[0].omp_bind == "0-45,96-141"
    assert p.replicas[0].env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "2"


def test_cpu_two_per_node_uses_physcpubind(cpu_topo):
    p = make_plan("cpu", "m", replicas=4, topology=cpu_topo("sysfs-2s96c-2numa"), base_port=8000)
    assert [r.argv[1:3] for r in p.replicas] == [
        ["--physcpubind=0-23,96-119", "--membind=0"],
        ["--physcpubind=24-47,120-143", "--membind=0"],
        ["--physcpubind=48-71,144-167", "--membind=1"],
        ["--physcpubind=72-95,168-191", "--membind=1"],
    ]
    assert [r.omp_bind for r in p.replicas] == ["0-22", "24-46", "48-70", "72-94"]


def test_cpu_tp_spans_nodes(cpu_topo):
    p = make_plan("cpu", "m", tp=2, topology=cpu_topo("sysfs-2s96c-4numa"), base_port=8000)
    assert len(p.replicas) == 2
    assert p.replicas[0].argv[1:3] == ["--cpunodebind=0-1", "--membind=0-1"]
    assert p.replicas[0].omp_bind == "0-22|24-46"  # one list per TP rank
    assert "--tensor-parallel-size" in p.replicas[0].argv


def test_cpu_vm_and_baseline(cpu_topo):
    p = make_plan("cpu", "m", topology=cpu_topo("sysfs-vm-1node"), base_port=8000)
    assert len(p.replicas) == 1 and not p.use_nginx and p.url == "http://127.0.0.1:8001"
    assert p.replicas[0].omp_bind == "0-2"
    b = make_plan("cpu", "m", baseline=True, topology=cpu_topo("sysfs-2s96c-2numa"), base_port=8000)
    (r,) = b.replicas
    assert r.argv[0] == "vllm" and "VLLM_CPU_OMP_THREADS_BIND" not in r.env
    assert "--dtype" in r.argv and not b.needs_numactl


def test_cpu_bad_counts(cpu_topo):
    with pytest.raises(BackendError, match="multiple of 2"):
        make_plan("cpu", "m", replicas=3, topology=cpu_topo("sysfs-2s96c-2numa"), base_port=8000)
    with pytest.raises(BackendError, match="lower --tp"):
        make_plan("cpu", "m", tp=2, topology=cpu_topo("sysfs-vm-1node"), base_port=8000)


def test_gpu_plans():
    h = Topology(gpu=gpu_fixture("h200x2"))
    p1 = make_plan("gpu", "m", tp=1, topology=h, base_port=9000)
    assert [r.env["CUDA_VISIBLE_DEVICES"] for r in p1.replicas] == ["0", "1"]
    assert all(r.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" for r in p1.replicas)
    assert p1.replicas[0].argv[-5:] == [
        "--tensor-parallel-size",
        "1",
        "--gpu-memory-utilization",
        "0.92",
        "--enable-prompt-tokens-details",
    ]
    p2 = make_plan("gpu", "m", tp=2, topology=h, base_port=9000, gpu_memory_utilization=0.8)
    (r,) = p2.replicas
    assert r.gpus == [0, 1] and r.env["CUDA_VISIBLE_DEVICES"] == "0,1" and not p2.use_nginx
    assert "0.8" in r.argv
    p8 = make_plan(
        "gpu", "m", tp=4, topology=Topology(gpu=gpu_fixture("gpu-8nvlink")), base_port=9000
    )
    assert [r.gpus for r in p8.replicas] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_emulator_default_needs_nothing():
    p = make_plan(model="m", replicas=3, base_port=7000, serve_args=["--max-num-seqs", "8"])
    assert p.backend == "emulator" and not p.needs_numactl
    assert all(r.argv[:3] == EMU for r in p.replicas) and not any(r.env for r in p.replicas)
    assert p.replicas[2].argv[3:] == [
        "m", "--host", "127.0.0.1", "--port", "7003", "--served-model-name", "m",
        "--enable-prompt-tokens-details", "--max-num-seqs", "8",
    ]  # fmt: skip


def test_cpu_plan_with_emulator_keeps_binding(cpu_topo):
    p = make_plan("cpu", "m", vllm_cmd=EMU, topology=cpu_topo("sysfs-2s96c-2numa"), base_port=8000)
    assert p.needs_numactl and p.replicas[0].argv[:3] == [
        "numactl",
        "--cpunodebind=0",
        "--membind=0",
    ]
    assert p.replicas[0].argv[3:6] == EMU


def test_multi_model_gpu():
    t = Topology(gpu=gpu_fixture("gpu-8nvlink"))
    models = [
        {"name": "llama", "replicas": 2},
        {"name": "qwen", "replicas": 2},
        {"name": "big", "tp": 2},
    ]
    p = make_plan("gpu", models=models, topology=t, base_port=9000, lb="round_robin")
    assert [(r.name, r.model, r.gpus) for r in p.replicas] == [
        ("llama-0", "llama", [0]), ("llama-1", "llama", [1]), ("qwen-0", "qwen", [2]),
        ("qwen-1", "qwen", [3]), ("big-0", "big", [4, 5]),
    ]  # fmt: skip
    assert p.models == ["llama", "qwen", "big"] and p.use_nginx


def test_external():
    p = make_plan("external", "m", urls=["http://10.0.0.1:8000", "10.0.0.2:8000"], base_port=7000)
    assert [r.url for r in p.replicas] == ["http://10.0.0.1:8000", "http://10.0.0.2:8000"]
    assert p.use_nginx and not p.commands()
    assert (
        make_plan("external", "m", urls=["https://api.example/v1"]).url == "https://api.example/v1"
    )


def test_free_ports_distinct():
    p = make_plan(model="m", replicas=4)
    ports = [r.port for r in p.replicas] + [p.nginx_port]
    assert len(set(ports)) == 5


def test_shell_line_masks_key():
    p = make_plan("gpu", "m", topology=Topology(gpu=gpu_fixture("h200x2")), base_port=9000)
    line = p.replicas[0].shell_line(api_key="sk-secret")
    assert "sk-secret" not in line and "VLLM_API_KEY='***'" in line
    assert line.startswith(
        "CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=0 VLLM_API_KEY='***' vllm serve m"
    )
    from locust_llm.backends.vllm import mask_argv

    assert mask_argv(["x", "--api-key", "k", "--api-key=k2"]) == [
        "x",
        "--api-key",
        "***",
        "--api-key=***",
    ]


def test_prompt_tokens_details_on_unless_the_user_says_otherwise():
    """The client's prefix-cache hit share reads usage.prompt_tokens_details, which vLLM sends
    only with the flag: plans ask for it, and a user's own setting of it wins."""
    on = make_plan(model="m").replicas[0].argv
    assert on.count("--enable-prompt-tokens-details") == 1
    off = make_plan(model="m", serve_args=["--no-enable-prompt-tokens-details"]).replicas[0].argv
    assert "--enable-prompt-tokens-details" not in off
    assert off[-1] == "--no-enable-prompt-tokens-details"
    mine = make_plan(model="m", serve_args=["--enable-prompt-tokens-details"]).replicas[0].argv
    assert mine.count("--enable-prompt-tokens-details") == 1
    eq = make_plan(model="m", serve_args=["--enable-prompt-tokens-details=false"]).replicas[0].argv
    assert "--enable-prompt-tokens-details" not in eq
