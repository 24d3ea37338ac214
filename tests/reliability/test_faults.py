"""Faults during a run: a replica or nginx killed, Locust SIGKILLed or interrupted.

Each test drives a real `locust` process with a 2-3 replica emulator stack behind real nginx,
injects the fault from outside by pid, and then checks what was counted, what was kept, and
that no process we started survives.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest

from locust_llm.backends import BackendError
from locust_llm.backends.nginx import find_nginx, parse_access_log

from .conftest import CHAT, alive, records, replica_port, stack_children, wait_gone

try:
    find_nginx()
    HAVE_NGINX = True
except BackendError:
    HAVE_NGINX = False
pytestmark = pytest.mark.skipif(not HAVE_NGINX, reason="nginx not installed")

EMU = "--emu-ttft-ms 20 --emu-itl-ms 20 --emu-eos-prob 0"  # 16 tokens ≈ 0.3 s per request
STARTED = r"started the built-in vLLM emulator \((\d+) replicas"


def stack_args(tmp_path, replicas: int, seconds: int, users: int = 6) -> list[str]:
    return [*CHAT, "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
            "--llm-backend", "emulator", "--llm-replicas", str(replicas),
            "--llm-serve-args", EMU, "--llm-run-dir", str(tmp_path / "run"),
            "--llm-records", str(tmp_path / "r.jsonl"),
            "--llm-summary", str(tmp_path / "s.json")]  # fmt: skip


def wait_records(path, n: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} records in {path} after {timeout}s")


def started_stack(p, replicas: int) -> dict:
    p.wait_for(STARTED)
    kids = stack_children(p.pid)
    assert len(kids["emulator"]) == replicas and kids["nginx"], kids
    p.remember()
    return kids


def test_replica_killed_mid_run_is_counted_and_attributed(locust_bg, tmp_path):
    p = locust_bg(stack_args(tmp_path, replicas=3, seconds=6))
    kids = started_stack(p, 3)
    wait_records(tmp_path / "r.jsonl", 10)
    victim = kids["emulator"][1]
    victim_addr = f"127.0.0.1:{replica_port(victim)}"
    t_kill = time.time()
    victim.kill()
    rc = p.wait(60)
    out = p.text()
    assert "Traceback" not in out, out[-3000:]
    assert rc == 1, out[-3000:]  # the cut streams are real errors of the server under test

    rs = records(tmp_path / "r.jsonl")
    failed = [r for r in rs if r["error"] and not r["aborted"]]
    assert 1 <= len(failed) <= 6, [r["error"] for r in failed]  # at most one stream per user
    # a stream cut mid-way, or a request nginx had just sent on a kept-alive connection to the
    # victim (nginx does not resend a POST it already sent): 502 from the proxy, said so
    gateway = [r for r in failed if r["error"].startswith("HTTP 502: Bad Gateway from a proxy")]
    cut = [r for r in failed if r not in gateway]
    assert all("truncated" in r["error"] or "connection lost" in r["error"] for r in cut), [
        r["error"] for r in failed
    ]
    ok_after = [r for r in rs if r["error"] is None and r["t_start"] > t_kill + 0.5]
    assert len(ok_after) >= 20  # the run goes on, on the two survivors

    # attribution: nginx's access log names the replica that served each cut stream
    entries = parse_access_log((tmp_path / "run" / "access.log").read_text())
    last_up = [(e, e["upstream"].split(",")[-1].strip()) for e in entries]
    on_victim = [e for e, up in last_up if up == victim_addr and e["time"] >= t_kill - 0.05]
    assert sum(1 for e in on_victim if e["status"] == 502) >= len(gateway)
    for r in cut:  # each cut stream ended when a stream from the victim was cut
        t_end = r["t_start"] + r["stream_closed"] / 1000
        near = [e for e in on_victim if abs(e["time"] - t_end) < 0.25]
        assert near, (t_end, t_kill, on_victim)
    # and every stream the victim served after the kill ended short of a full response
    full = max(e["bytes_sent"] for e, up in last_up if up != victim_addr and e["status"] == 200)
    assert sum(1 for e in on_victim if e["bytes_sent"] < full * 0.9) >= len(cut)
    served_late = [e for e, up in last_up if e["time"] > t_kill + 0.5]
    assert served_late and all(up != victim_addr for e, up in last_up if e in served_late)

    s = json.loads((tmp_path / "s.json").read_text())
    assert s["failed"] == len(failed) and s["completed"] == sum(1 for r in rs if r["error"] is None)
    assert wait_gone(p.remember()) == []


def test_nginx_killed_mid_run_fails_clearly_and_keeps_partial_results(locust_bg, tmp_path):
    p = locust_bg(stack_args(tmp_path, replicas=2, seconds=5))
    kids = started_stack(p, 2)
    wait_records(tmp_path / "r.jsonl", 10)
    master = min(kids["nginx"], key=lambda c: c.create_time())
    t_kill = time.time()
    os.killpg(master.pid, signal.SIGKILL)  # master and workers: nginx is gone
    rc = p.wait(60)
    out = p.text()
    assert rc == 1 and "Traceback" not in out, out[-3000:]
    assert "connection refused by http://127.0.0.1:" in out  # named, in the error report
    rs = records(tmp_path / "r.jsonl")
    before = [r for r in rs if r["error"] is None and r["t_start"] < t_kill]
    assert len(before) >= 10  # what finished before the fault is kept
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["completed"] == sum(1 for r in rs if r["error"] is None) >= 10
    assert s["failed"] > 0
    assert wait_gone(p.remember()) == []  # replicas torn down at quit


def _ports_closed(ports: list[int]) -> bool:
    for port in ports:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return False
    return True


def test_sigkill_locust_keeps_records_and_leaves_no_process(locust_bg, tmp_path):
    p = locust_bg(stack_args(tmp_path, replicas=2, seconds=60, users=8))
    kids = started_stack(p, 2)
    ports = [replica_port(c) for c in kids["emulator"]]
    wait_records(tmp_path / "r.jsonl", 20)
    pids = p.remember()
    assert len(pids) >= 4  # 2 replicas + nginx master + worker(s)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    assert wait_gone(pids) == [], "stack processes outlived a SIGKILLed locust"
    rs = records(tmp_path / "r.jsonl")  # every line parses, none torn
    assert len(rs) >= 20 and all(r["ttft"] > 0 for r in rs if r["error"] is None)
    assert _ports_closed(ports)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_tears_down_and_writes_summary(locust_bg, tmp_path, sig):
    p = locust_bg(stack_args(tmp_path, replicas=2, seconds=60))
    started_stack(p, 2)
    wait_records(tmp_path / "r.jsonl", 10)
    pids = p.remember()
    t_kill = time.monotonic()
    os.kill(p.pid, sig)
    rc = p.wait(60)
    # the signal stopped a 60 s run, not the run's end (a signal ignored would pass the rest)
    assert time.monotonic() - t_kill < 30
    out = p.text()
    assert "Traceback" not in out, out[-3000:]
    assert rc == 0, out[-3000:]  # requests cut off by the interrupt are aborted, not errors
    assert wait_gone(pids, timeout=5) == []
    assert not any(alive(x) for x in pids)
    s = json.loads((tmp_path / "s.json").read_text())
    rs = records(tmp_path / "r.jsonl")
    assert s["completed"] == sum(1 for r in rs if r["error"] is None) >= 10
    # users are stopped before the summary: what was in flight is in it, as aborted, and
    # nothing failed against a backend stopped under live users
    assert s["aborted"] == sum(1 for r in rs if r["aborted"]) >= 1
    assert s["failed"] == 0
