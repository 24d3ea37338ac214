import json
import shlex
from pathlib import Path

import pytest

from locust_llm.backends.cli import main
from locust_llm.backends.topology import parse_cpulist

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
                         "--served-model-name", "M", "--dtype", "bfloat16",
                         "--enable-prompt-tokens-details", "--max-num-seqs", "64"]  # fmt: skip
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


def _get(url: str, key: str | None = None) -> int:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


@pytest.mark.timing  # wall-clock sensitive (signals, a knee, a browser): run alone
def test_plan_write_gives_a_script_that_runs_the_plan(tmp_path, capsys):
    import os
    import signal
    import subprocess
    import time

    d = tmp_path / "plan"
    key = "sk-written-nowhere"
    rc = main(["--backend", "emulator", "--model", "m", "--replicas", "2", "--api-key", key,
               "--write", str(d)])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and key not in out and f"bash {d / 'run.sh'}" in out
    assert sorted(p.name for p in d.iterdir()) == ["nginx.conf", "run.sh"]
    assert all(key not in p.read_text() and "***" not in p.read_text() for p in d.iterdir())
    entry = next(ln.split()[1] for ln in out.splitlines() if ln.startswith("entry:"))

    # without the key in its environment the script refuses to start anything
    env = {k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"}
    bare = subprocess.run(["bash", str(d / "run.sh")], env=env, capture_output=True, text=True)
    assert bare.returncode != 0 and "export VLLM_API_KEY" in bare.stderr

    proc = subprocess.Popen(["bash", str(d / "run.sh")], env={**env, "VLLM_API_KEY": key},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _get(entry + "/v1/models", key) != 200:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.3)
        assert _get(entry + "/v1/models") == 401  # the replicas got the key from the env
        assert (d / "replica-m-0.log").exists() and (d / "nginx.log").exists()
        proc.send_signal(signal.SIGINT)  # Ctrl-C stops everything it started
        assert proc.wait(timeout=30) == 130
        deadline = time.monotonic() + 10
        while True:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break  # no process of the script's group is left
            assert time.monotonic() < deadline, "a process of run.sh survived Ctrl-C"
            time.sleep(0.2)
        assert _get(entry + "/v1/models", key) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def fixture_physical_cores(dump: Path) -> dict[int, list[int]]:
    """Node -> its physical cores (the first CPU of each sibling set), read from the dump."""
    files = dict(line.split("\t", 1) for line in dump.read_text().splitlines())
    first_of = {}
    for path, value in files.items():
        if path.endswith("/thread_siblings_list"):
            cpu = int(path.split("/")[3][3:])
            first_of[cpu] = min(int(x) for x in value.replace("-", ",").split(","))
    out = {}
    for path, value in files.items():
        if path.endswith("/cpulist") and "/node/node" in path:
            node = int(path.split("/")[3][4:])
            cpus = []
            for part in value.split(","):
                a, _, b = part.partition("-")
                cpus += range(int(a), int(b or a) + 1)
            out[node] = sorted(c for c in cpus if first_of[c] == c)
    return out


def test_two_socket_plan_binds_each_replica_to_its_nodes_physical_cores(capsys, sysfs):
    dump = FIXTURES / "sysfs-2s96c-2numa.txt"
    cores = fixture_physical_cores(dump)
    assert sorted(cores) == [0, 1] and all(len(c) == 48 for c in cores.values())
    rc = main(["--backend", "cpu", "--model", "M", "--sysfs-root", str(sysfs(dump.stem)),
               "--dry-run", "--json"])  # fmt: skip
    plan = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(plan["replicas"]) == 2 and plan["nginx_port"] == 8000
    for node, r in enumerate(plan["replicas"]):
        words = shlex.split(r["command"])
        env = dict(w.split("=", 1) for w in words[: words.index("numactl")])
        bound = parse_cpulist(env["VLLM_CPU_OMP_THREADS_BIND"])
        # every physical core of its own node but the one reserved for vLLM's serving thread
        assert bound == cores[node][:-1], node
        assert env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "1"
        i = words.index("numactl")
        assert words[i + 1 : i + 3] == [f"--cpunodebind={node}", f"--membind={node}"]
        assert r["numa_nodes"] == [node]


def test_plan_script_runs_replicas_where_the_plan_was_made(tmp_path, monkeypatch):
    # a model given as a relative folder must be found wherever run.sh is started from; the
    # logs still land in the plan's folder
    from locust_llm.backends import make_plan
    from locust_llm.backends.script import render_script

    work = tmp_path / "project"
    (work / "models" / "tiny").mkdir(parents=True)
    monkeypatch.chdir(work)
    plan = make_plan("emulator", "models/tiny")
    d = tmp_path / "plan"
    text = render_script(plan, d, "nginx", api_key=False)
    assert f"cd {shlex.quote(str(work))}" in text.splitlines()
    replica = next(ln for ln in text.splitlines() if " > " in ln and "replica-" in ln)
    assert f" > {d.resolve()}/replica-" in replica and replica.endswith(".log 2>&1 &")
