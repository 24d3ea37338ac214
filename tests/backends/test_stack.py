"""Real runs: emulator replicas behind a real nginx (skipped where nginx is missing)."""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from locust_llm.backends import BackendError, Stack, make_plan
from locust_llm.backends.nginx import find_nginx, parse_access_log, upstream_counts
from tests.runs import alive

from .conftest import emulator_cmd

try:
    find_nginx()
    HAVE_NGINX = True
except BackendError:
    HAVE_NGINX = False
needs_nginx = pytest.mark.skipif(not HAVE_NGINX, reason="nginx not installed")
# Token timing for the lifecycle tests: 20 ms per token keeps streams long enough to overlap;
# no early EOS, so every stream carries exactly max_tokens tokens.
SERVE_ARGS = ["--emu-profile", "constant", "--emu-ttft-ms", "20", "--emu-itl-ms", "20",
              "--emu-eos-prob", "0"]  # fmt: skip


def chat(base: str, model: str = "m", max_tokens: int = 20, timeout: float = 10.0,
         headers: dict | None = None, prefix: str = "") -> dict:  # fmt: skip
    """Raw-socket streamed request: times to the first `data:` event and to `[DONE]`.

    Raw socket and HTTP/1.0-free parsing: nothing between us and the bytes can buffer."""
    host, port = base.split("//")[1].split(":")
    body = json.dumps({"model": model, "stream": True, "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()  # fmt: skip
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    req = (
        f"POST {prefix}/v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Accept-Encoding: identity\r\nConnection: close\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t0 = time.perf_counter()
    s.sendall(req)
    buf = b""
    ttft = None
    events = 0
    status = None
    done = False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            if status is None and b"\r\n" in buf:
                status = int(buf.split(b" ", 2)[1])
            n = buf.count(b"data: {")
            if n and ttft is None:
                ttft = time.perf_counter() - t0
            events = n
            if b"data: [DONE]" in buf:
                done = True
                break
    except OSError:
        pass
    finally:
        s.close()
    return {"status": status, "ttft": ttft, "e2e": time.perf_counter() - t0, "events": events,
            "done": done, "body": buf}  # fmt: skip


def log_entries(path: Path, at_least: int, timeout: float = 3.0) -> list[dict]:
    """Access-log entries once `at_least` are written (nginx logs a request when it finalizes
    it, which can be a moment after the client saw `[DONE]`)."""
    deadline = time.monotonic() + timeout
    while True:
        entries = parse_access_log(path.read_text()) if path.exists() else []
        if len(entries) >= at_least or time.monotonic() > deadline:
            return entries
        time.sleep(0.02)


@pytest.fixture
def stack3(tmp_path):
    plan = make_plan("emulator", "m", replicas=3, vllm_cmd=emulator_cmd(), serve_args=SERVE_ARGS)
    with Stack(plan, run_dir=tmp_path / "run", ready_timeout=60, log=lambda s: None) as st:
        yield st
        started = list(st.pids)  # stop() empties pids: keep what it must have reaped
    assert len(started) >= 4  # three replicas and nginx
    assert not [p for p in started if alive(p)], "stop() left processes running"


@needs_nginx
def test_three_replicas_behind_nginx(stack3):
    st = stack3
    assert len(st.replicas) == 3 and st.url.endswith(str(st.plan.nginx_port))
    for r in st.replicas:
        assert r.log_path.exists() and alive(r.pid) and r.metrics_url.endswith("/metrics")
    with urllib.request.urlopen(st.nginx_status_url, timeout=5) as resp:
        assert b"Active connections" in resp.read()

    # TTFT through nginx within 5 ms of direct (medians, alternating to share the noise)
    direct, proxied = [], []
    for _ in range(12):
        d = chat(st.replicas[0].url, max_tokens=5)
        p = chat(st.url, max_tokens=5)
        assert d["done"] and p["done"] and p["events"] >= 5
        direct.append(d["ttft"])
        proxied.append(p["ttft"])
    md, mp = statistics.median(direct) * 1e3, statistics.median(proxied) * 1e3
    print(f"TTFT median direct {md:.2f} ms, via nginx {mp:.2f} ms, delta {mp - md:+.2f} ms")
    assert mp - md < 5.0

    # least_conn spreads concurrent streams across all three replicas
    before = len(parse_access_log(st.access_log.read_text()))
    results = []
    threads = [threading.Thread(target=lambda: results.append(chat(st.url, max_tokens=20)))
               for _ in range(9)]  # fmt: skip
    for t in threads:
        t.start()
        time.sleep(0.01)
    for t in threads:
        t.join()
    assert all(r["done"] for r in results)
    entries = log_entries(st.access_log, before + 9)[before:]
    counts = upstream_counts(entries)
    print("least_conn spread:", dict(counts))
    assert set(counts) == {r.address for r in st.replicas}
    assert min(counts.values()) >= 2


@needs_nginx
def test_replica_killed_mid_run_fails_over(stack3):
    st = stack3
    victim = st.replicas[1]
    stop_at = time.monotonic() + 3.0
    out: list[tuple[float, bool]] = []
    lock = threading.Lock()

    def worker():
        while time.monotonic() < stop_at:
            r = chat(st.url, max_tokens=20, timeout=5)
            ok = r["status"] == 200 and r["done"]
            with lock:
                out.append((time.monotonic(), ok))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    t_kill = time.monotonic()
    st.kill_replica(victim.name)
    for t in threads:
        t.join()
    errors = sum(1 for _, ok in out if not ok)
    late_ok = sum(1 for t, ok in out if ok and t > t_kill + 0.5)
    print(f"requests {len(out)}, errors {errors}, ok after kill {late_ok}")
    assert 1 <= errors <= 6  # the streams in flight on the victim are cut: counted as errors
    assert late_ok >= 10  # later requests go to the survivors
    entries = parse_access_log(st.access_log.read_text())
    failed_over = [e for e in entries if "," in e["upstream"]]
    assert all(e["upstream"].split(",")[-1].strip() != victim.address for e in failed_over)
    served_late = [e for e in entries if e["time"] > time.time() - 1.0 and e["status"] == 200]
    assert served_late and all(
        victim.address not in e["upstream"].split(",")[-1] for e in served_late
    )


@needs_nginx
def test_two_models_routed_by_header_and_path_with_api_key(tmp_path):
    models = [{"name": "org/alpha", "replicas": 2}, {"name": "beta"}]
    plan = make_plan("emulator", models=models, vllm_cmd=emulator_cmd(), serve_args=SERVE_ARGS)
    auth = {"Authorization": "Bearer sk-test"}
    with Stack(
        plan, run_dir=tmp_path, api_key="sk-test", ready_timeout=60, log=lambda s: None
    ) as st:
        before = len(log_entries(st.access_log, 2))  # the start-up verification: one per model
        beta = st.replicas[2].address
        assert chat(st.url, "beta", 3, headers={**auth, "X-Model": "beta"})["done"]
        assert chat(st.url, "beta", 3, headers=auth, prefix="/models/beta")["done"]
        assert chat(st.url, "org/alpha", 3, headers=auth, prefix="/models/org/alpha")["done"]
        assert chat(st.url, "org/alpha", 3, headers=auth)["done"]  # no header: first model
        assert chat(st.url, "beta", 3, headers={"X-Model": "beta"})["status"] == 401
        entries = log_entries(st.access_log, before + 5)[before:]
        ups = [e["upstream"] for e in entries]
        assert ups[0] == ups[1] == ups[4] == beta and beta not in (ups[2], ups[3])
        assert "sk-test" not in (tmp_path / "nginx.conf").read_text()


PARENT = r"""
import json, sys, time
from locust_llm.backends import Stack, make_plan
plan = make_plan("emulator", "m", replicas=2, vllm_cmd=json.loads(sys.argv[2]),
                 serve_args=["--emu-profile", "constant"])
st = Stack(plan, run_dir=sys.argv[1], ready_timeout=60, log=lambda s: None).start()
import psutil
pids = [p.pid for pid in st.pids for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]]
print(json.dumps({"pids": pids, "ports": [r.port for r in st.replicas] + [st.plan.nginx_port]}), flush=True)
time.sleep(120)
"""


@needs_nginx
def test_sigkill_parent_leaves_no_processes(tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path / "run"), json.dumps(emulator_cmd())],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        info = json.loads(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
    pids = info["pids"]
    assert len(pids) >= 4  # 2 replicas + nginx master + worker(s)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in pids if alive(p)] == []
    for port in info["ports"]:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0


def test_single_replica_is_direct_and_stop_is_idempotent(tmp_path):
    plan = make_plan("emulator", "m", vllm_cmd=emulator_cmd())
    st = Stack(plan, run_dir=tmp_path, ready_timeout=60, log=lambda s: None)
    st.start()
    assert st.url == st.replicas[0].url and st.nginx_status_url is None
    assert chat(st.url, max_tokens=3)["done"]
    pid = st.replicas[0].pid
    st.stop()
    st.stop()
    assert not alive(pid)


def test_replicas_lead_their_own_group_inside_our_session(tmp_path):
    # own group: stop() reaches what a replica forks; our session: the scheduler's autogroup
    # is ours, so on a small host the servers cannot outrank the load generator for the CPU
    import os

    plan = make_plan("emulator", "m", vllm_cmd=emulator_cmd())
    st = Stack(plan, run_dir=tmp_path, ready_timeout=60, log=lambda s: None)
    st.start()
    try:
        pid = st.replicas[0].pid
        assert os.getpgid(pid) == pid != os.getpgid(0)
        assert os.getsid(pid) == os.getsid(0)
    finally:
        st.stop()


def test_port_taken_is_clear(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        plan = make_plan("emulator", "m", vllm_cmd=emulator_cmd(), base_port=port - 1)
        with pytest.raises(BackendError, match=f"port {port} .* already in use"):
            Stack(plan, run_dir=tmp_path, log=lambda s: None).start()


def test_replica_that_exits_shows_its_log(tmp_path):
    cmd = [sys.executable, "-c", "import sys; print('CUDA out of memory (pretend)'); sys.exit(3)"]
    plan = make_plan("emulator", "m", vllm_cmd=cmd)
    with pytest.raises(BackendError, match=r"(?s)exited with code 3.*CUDA out of memory"):
        Stack(plan, run_dir=tmp_path, log=lambda s: None).start()


def test_replica_never_healthy_times_out_with_log(tmp_path):
    code = "import time; print('loading weights 37%', flush=True); time.sleep(60)"
    plan = make_plan("emulator", "m", vllm_cmd=[sys.executable, "-c", code])
    st = Stack(plan, run_dir=tmp_path, ready_timeout=1.0, log=lambda s: None)
    with pytest.raises(BackendError, match=r"(?s)not healthy after 1s.*loading weights 37%"):
        st.start()
    assert not alive(plan.replicas[0].pid)


def test_numactl_missing_is_clear(tmp_path, monkeypatch, cpu_topo):
    plan = make_plan("cpu", "m", vllm_cmd=emulator_cmd(), topology=cpu_topo("sysfs-vm-1node"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackendError, match="numactl is required"):
        Stack(plan, run_dir=tmp_path, log=lambda s: None).start()


@pytest.mark.skipif(not Path("/usr/bin/numactl").exists(), reason="numactl not installed")
def test_cpu_plan_runs_under_numactl_with_emulator(tmp_path):
    plan = make_plan("cpu", "m", vllm_cmd=emulator_cmd(), kvcache_gib=1)
    with Stack(plan, run_dir=tmp_path, ready_timeout=60, log=lambda s: None) as st:
        r = st.replicas[0]
        assert r.argv[0] == "numactl"
        env = open(f"/proc/{r.pid}/environ", "rb").read().split(b"\0")
        assert f"VLLM_CPU_OMP_THREADS_BIND={r.omp_bind}".encode() in env
        assert chat(st.url, max_tokens=2)["done"]


def test_never_healthy_with_an_empty_log_says_so(tmp_path):
    """A server that prints nothing and never listens: the error says the log is empty rather
    than ending on a blank 'last 20 lines', and the process is gone afterwards."""
    plan = make_plan(
        "emulator", "m", vllm_cmd=[sys.executable, "-c", "import time; time.sleep(60)"]
    )
    stack = Stack(plan, tmp_path / "run", ready_timeout=1, log=lambda m: None)
    with pytest.raises(BackendError) as e:
        stack.start()
    msg = str(e.value)
    assert "\n" not in msg and "not healthy after 1s" in msg and "is empty" in msg
    stat = Path(f"/proc/{plan.replicas[0].pid}/stat")
    assert not stat.exists() or stat.read_text().split()[2] == "Z"
