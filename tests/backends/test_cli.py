import json
import shlex

from locust_llm.backends.cli import main

from .conftest import FIXTURES


def test_plan_cli_cpu_dry_run(capsys, sysfs):
    root = sysfs("sysfs-2s96c-2numa")
    rc = main(["--backend", "cpu", "--model", "M", "--sysfs-root", str(root), "--dry-run",
               "--api-key", "sk-top-secret", "--", "--max-num-seqs", "64"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "sk-top-secret" not in out
    cmds = [line for line in out.splitlines() if line.startswith("VLLM_")]
    assert len(cmds) == 2
    words = shlex.split(cmds[1])
    assert words[:4] == ["VLLM_API_KEY=***", "VLLM_CPU_KVCACHE_SPACE=297",
                         "VLLM_CPU_NUM_OF_RESERVED_CPU=1", "VLLM_CPU_OMP_THREADS_BIND=48-94"]  # fmt: skip
    assert words[4:7] == ["numactl", "--cpunodebind=1", "--membind=1"]
    assert words[7:] == ["vllm", "serve", "M", "--host", "127.0.0.1", "--port", "8002",
                         "--served-model-name", "M", "--dtype", "bfloat16", "--max-num-seqs",
                         "64"]  # fmt: skip
    assert "nginx -p" in out and "entry: http://127.0.0.1:8000" in out


def test_plan_cli_gpu_json(capsys):
    d = FIXTURES / "h200x2"
    rc = main(["--backend", "gpu", "--model", "M", "--tp", "2", "--dry-run", "--json",
               "--gpu-query", str(d / "query-gpu.csv"), "--gpu-topo", str(d / "topo-m.txt")])  # fmt: skip
    plan = json.loads(capsys.readouterr().out)
    assert rc == 0 and plan["replicas"][0]["gpus"] == [0, 1]
    assert "CUDA_VISIBLE_DEVICES=0,1" in plan["replicas"][0]["command"]


def test_plan_cli_error_is_clear(capsys, sysfs):
    root = str(sysfs("sysfs-2s96c-2numa"))
    rc = main(["--backend", "cpu", "--model", "M", "--replicas", "3", "--sysfs-root", root])
    err = capsys.readouterr().err
    assert rc == 2 and "locust-llm plan:" in err and "multiple of 2" in err


def test_top_level_dispatch(capsys):
    from locust_llm.cli import main as top

    assert top(["plan", "--model", "M", "--replicas", "2", "--dry-run"]) == 0
    assert "backend: emulator" in capsys.readouterr().out


def test_plan_sysfs_root_that_does_not_exist_is_an_error(capsys) -> None:
    from locust_llm.backends.cli import main

    assert (
        main(["--backend", "cpu", "--model", "m", "--dry-run", "--sysfs-root", "/nonexistent/path"])
        == 2
    )
    err = capsys.readouterr().err
    assert "--sysfs-root /nonexistent/path" in err and len(err.strip().splitlines()) == 1
