"""End-to-end runs of the workload locustfiles against the emulator (headless Locust)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from locust_llm.workload.arrivals import ArrivalSchedule

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
LOCUST = str(Path(PY).with_name("locust"))

pytestmark = pytest.mark.skipif(
    not (ROOT / "locust_llm" / "emulator" / "__main__.py").exists(), reason="emulator not available"
)


def _free_port() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def _emulator(*args: str):
    p = subprocess.Popen(
        [PY, "-m", "locust_llm.emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        cwd=ROOT,
    )
    deadline = time.time() + 20
    while time.time() < deadline:
        line = p.stdout.readline()
        m = re.search(r"http://[0-9.]+:\d+", line or "")
        if m:
            return p, m.group(0)
        if p.poll() is not None:
            break
    p.kill()
    raise RuntimeError("emulator did not start")


@pytest.fixture
def emulator(request):
    procs = []

    def start(*args: str) -> str:
        p, url = _emulator(*args)
        procs.append(p)
        return url

    yield start
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(10)


def _locust(
    locustfile: str, host: str, tmp: Path, *args: str, timeout: float = 60
) -> tuple[list[dict], dict]:
    records, summary = tmp / "records.jsonl", tmp / "summary.json"
    cmd = [
        LOCUST,
        "-f",
        f"locustfiles/{locustfile}",
        "--headless",
        "-H",
        host,
        "--llm-backend",
        "none",
    ]
    cmd += ["--llm-records", str(records), "--llm-summary", str(summary), "--only-summary", *args]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert summary.exists(), r.stdout[-3000:] + r.stderr[-3000:]
    recs = [json.loads(x) for x in records.read_text().splitlines() if x.strip()]
    return recs, json.loads(summary.read_text())


def _mean(xs):
    return sum(xs) / len(xs)


def test_open_loop_queue_time_grows_at_saturation_closed_loop_does_not(emulator, tmp_path):
    # 4 slots, ~0.3 s per request -> ~13 req/s capacity; ask for 30 req/s
    host = emulator("--max-num-seqs", "4", "--emu-ttft-ms", "20", "--emu-itl-ms", "10")
    common = ["--llm-max-tokens", "24", "--llm-ignore-eos", "-u", "4", "-r", "4", "-t", "6s"]
    (tmp_path / "open").mkdir()
    recs, s = _locust("rate.py", host, tmp_path / "open", "--llm-rate", "30", *common)
    ok = sorted((r for r in recs if r["error"] is None), key=lambda r: r["t_start"])
    third = len(ok) // 3
    early, late = (
        _mean([r["queue_time"] for r in ok[:third]]),
        _mean([r["queue_time"] for r in ok[-third:]]),
    )
    print(
        f"open loop: {len(ok)} ok, queue_time early {early:.0f} ms late {late:.0f} ms, summary mean {s['mean_queue_time_ms']}"
    )
    assert late > early + 500 and late > 1000
    assert s["mean_queue_time_ms"] and s["mean_queue_time_ms"] > 300

    (tmp_path / "closed").mkdir()
    recs_c, s_c = _locust(
        "sweep.py",
        host,
        tmp_path / "closed",
        "--llm-sweep-users",
        "4",
        "--llm-sweep-hold",
        "6",
        *common[:3],
    )
    ok_c = sorted((r for r in recs_c if r["error"] is None), key=lambda r: r["t_start"])
    third = len(ok_c) // 3
    assert all(r["queue_time"] == 0 for r in ok_c)
    e_ttft, l_ttft = (
        _mean([r["ttft"] for r in ok_c[:third]]),
        _mean([r["ttft"] for r in ok_c[-third:]]),
    )
    print(f"closed loop: {len(ok_c)} ok, ttft early {e_ttft:.0f} ms late {l_ttft:.0f} ms")
    assert l_ttft < e_ttft * 1.5 + 20  # flat: the closed loop hides the backlog


@pytest.mark.timing  # measures wall-clock timing: run alone, not beside other tests
@pytest.mark.parametrize("arrival", ["constant", "poisson"])
@pytest.mark.parametrize("processes", [1, 2])
def test_total_rate_within_5_percent(emulator, tmp_path, processes, arrival):
    host = emulator("--max-num-seqs", "256", "--emu-ttft-ms", "5", "--emu-itl-ms", "2")
    args = [
        "--llm-rate",
        "40",
        "--llm-arrival",
        arrival,
        "--llm-max-tokens",
        "4",
        "-u",
        "32",
        "-r",
        "100",
    ]
    args += ["-t", "8s", "--llm-seed", "3"]
    if processes > 1:  # a port of its own: concurrent runs would collide on Locust's 5557
        port = _free_port()
        args += ["--processes", str(processes), "--master-bind-port", port, "--master-port", port]
    recs, _ = _locust("rate.py", host, tmp_path, *args)
    starts = sorted(r["t_start"] for r in recs)
    t0 = starts[0]  # the schedule's first arrival is at its start
    sent = sum(1 for t in starts if t0 + 1.0 <= t < t0 + 7.0)
    # the seeded schedule's own count in the window: a Poisson sample of ~240 varies by ~6 %,
    # so the client is held to the schedule, and the schedule to R
    planned = sum(1 for t in ArrivalSchedule(40, arrival, seed=3).times(7.0) if t >= 1.0)
    print(
        f"{arrival} processes={processes}: sent {sent / 6:.2f}/s, schedule {planned / 6:.2f}/s (R=40)"
    )
    assert abs(sent - planned) / planned < 0.05
    if (
        arrival == "constant"
    ):  # Poisson's long-run rate is checked in tests/workload/test_arrivals.py
        assert abs(sent / 6.0 - 40) / 40 < 0.05
    assert max(r["queue_time"] for r in recs) < 200  # unsaturated: no backlog


def test_multiturn_history_grows(emulator, tmp_path):
    host = emulator("--emu-ttft-ms", "5", "--emu-itl-ms", "2")
    recs, _ = _locust(
        "multiturn.py",
        host,
        tmp_path,
        "--llm-turns",
        "3",
        "--llm-prompt-dist",
        "20",
        "--llm-max-tokens",
        "8",
        "--llm-think-time",
        "0.05",
        "-u",
        "2",
        "-r",
        "2",
        "-t",
        "3s",
    )
    ok = [r for r in recs if r["error"] is None]
    sizes = sorted({r["prompt_tokens"] for r in ok})
    print("prompt token sizes seen:", sizes)
    assert len(sizes) >= 3 and sizes[-1] > sizes[0] + 20  # turn 3 carries two turns of history
