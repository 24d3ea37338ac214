"""Real `locust` processes against the built-in emulator: the paths users run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.runs import LOCUST, ROOT, alive, emulator, free_port, records, summary
from tests.runs import run_locust as run

EMU = "--emu-ttft-ms 20 --emu-itl-ms 5"
COMMON = [
    "-f",
    "locustfiles/chat.py",
    "--llm-max-tokens",
    "16",
    "--llm-ignore-eos",
    "--llm-serve-args",
    EMU,
]


def started_pids(stderr: str) -> list[int]:
    """Pids from the one line locust-llm logs when it starts the built-in emulator."""
    import re

    lines = [x for x in stderr.splitlines() if "started the built-in vLLM emulator" in x]
    assert len(lines) == 1, stderr[-2000:]
    return [int(p) for p in re.search(r"pid ([0-9,]+)", lines[0]).group(1).split(",")]


def headless(tmp: Path, *extra: str, users: int = 4, t: str = "4s") -> subprocess.CompletedProcess:
    return run(
        [
            *COMMON,
            "--headless",
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            t,
            "--llm-summary",
            str(tmp / "summary.json"),
            *extra,
        ]
    )


def test_no_host_starts_emulator_and_stops_it(tmp_path):
    p = headless(tmp_path, "--llm-records", str(tmp_path / "r.jsonl"))
    assert p.returncode == 0, p.stderr[-3000:]
    pids = started_pids(p.stderr)
    assert pids and not any(alive(pid) for pid in pids)  # stopped at quit
    s = summary(tmp_path / "summary.json", p)
    assert s["completed"] > 10 and s["failed"] == 0
    assert s["total_output_tokens"] == 16 * s["completed"]  # ignore_eos: exactly max_tokens
    assert 19 <= s["median_ttft_ms"] <= 40 and 4.5 <= s["median_itl_ms"] <= 8
    recs = records(tmp_path / "r.jsonl")
    assert len(recs) == s["completed"] + s["aborted"] + s["failed"]
    assert all(r["id"].startswith("chatcmpl-") for r in recs if r["error"] is None)
    # the LLM rows are printed in Locust's own stats table, outside Aggregated
    assert "LLM      TTFT" in p.stderr and "LLM      ITL" in p.stderr


def test_host_given_starts_nothing(tmp_path):
    with emulator(*EMU.split(), model="served-x") as url:
        p = headless(tmp_path, "--host", url, t="3s")
        assert p.returncode == 0, p.stderr[-2000:]
        assert "started the built-in" not in p.stderr
        s = summary(tmp_path / "summary.json", p)
        assert s["meta"]["model"] == "served-x"  # default model: first id of /v1/models


def test_slo_failure_exits_3_and_pass_exits_0(tmp_path):
    p = headless(tmp_path, "--llm-slo", "ttft_p95<=1ms", "--llm-slo", "error_rate<=1%", t="3s")
    assert p.returncode == 3, p.stderr[-2000:]
    assert "SLO FAIL ttft_p95<=1ms" in p.stderr and "SLO PASS error_rate<=1%" in p.stderr
    p = headless(tmp_path, "--llm-slo", "ttft_p95<=2s", t="3s")
    assert p.returncode == 0, p.stderr[-2000:]


def test_bad_option_values_are_refused():
    p = run([*COMMON, "--headless", "--llm-max-tokens", "-1"])
    assert p.returncode != 0 and "--llm-max-tokens" in p.stderr and "Traceback" not in p.stderr
    p = run([*COMMON, "--headless", "--llm-slo", "ttft_p95<=fast"])
    assert p.returncode != 0 and "cannot parse SLO" in p.stderr and "Traceback" not in p.stderr


def _compare(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in ("completed", "failed"):
        assert b[k] > 0 or k == "failed"
    assert b["failed"] == 0
    assert b["total_output_tokens"] == 16 * b["completed"]
    for k in ("median_ttft_ms", "median_itl_ms", "median_tpot_ms", "median_e2el_ms"):
        assert b[k] == pytest.approx(a[k], rel=0.25), k
    assert b["request_throughput"] == pytest.approx(a["request_throughput"], rel=0.35)


@pytest.mark.timing  # measures wall-clock timing: run alone, not beside other tests
def test_summary_same_local_processes_and_master_workers(tmp_path):
    local, procs, dist = tmp_path / "local", tmp_path / "procs", tmp_path / "dist"
    for d in (local, procs, dist):
        d.mkdir()
    p = headless(local)
    assert p.returncode == 0, p.stderr[-2000:]
    port = str(free_port())  # its own port: concurrent runs would collide on Locust's 5557
    p = headless(procs, "--processes", "2", "--master-bind-port", port, "--master-port", port)
    assert p.returncode == 0, p.stderr[-2000:]
    port = free_port()
    master = subprocess.Popen(
        LOCUST
        + [
            *COMMON,
            "--master",
            "--headless",
            "--expect-workers",
            "2",
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "4s",
            "--master-bind-port",
            str(port),
            "--llm-summary",
            str(dist / "summary.json"),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    workers = [
        subprocess.Popen(
            LOCUST + ["-f", "locustfiles/chat.py", "--worker", "--master-port", str(port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        _, err = master.communicate(timeout=60)
        assert master.returncode == 0, err[-2000:]
    finally:
        for w in workers:
            w.wait(timeout=20)
    summaries = [json.loads((d / "summary.json").read_text()) for d in (local, procs, dist)]
    _compare(summaries[0], summaries[1])
    _compare(summaries[0], summaries[2])
    # the client's CPU and its wait for one are the sums the workers reported
    for s in summaries:
        assert s["client_cpu_s"] > 0 and 0 <= s["client_runqueue_s"] < s["duration"] * 2
        assert s["client_runqueue_share"] == pytest.approx(
            s["client_runqueue_s"] / (s["duration"] * s["client_processes"])
        )
    assert [s["client_processes"] for s in summaries] == [1, 2, 2]


def test_sigkill_keeps_every_record_and_leaves_no_emulator(tmp_path):
    records = tmp_path / "r.jsonl"
    err = tmp_path / "stderr.txt"
    with open(err, "w") as errf:
        proc = subprocess.Popen(
            LOCUST
            + [
                *COMMON,
                "--headless",
                "-u",
                "8",
                "-r",
                "8",
                "-t",
                "60s",
                "--llm-records",
                str(records),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=errf,
        )
    deadline = time.time() + 30
    while time.time() < deadline and (not records.exists() or records.stat().st_size < 4000):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lines = records.read_bytes().split(b"\n")
    assert lines[-1] == b""  # the file ends with a complete line
    assert len(lines) > 3 and all(json.loads(x)["ttft"] > 0 for x in lines[:-1])
    pids = started_pids(err.read_text())
    deadline = time.time() + 5
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids), "emulator outlived a SIGKILLed locust"


@pytest.mark.timing  # measures wall-clock timing: run alone, not beside other tests
def test_kernel_timestamps_by_default_and_user_mode_on_request(tmp_path):
    records = tmp_path / "r.jsonl"
    p = headless(
        tmp_path, "--llm-records", str(records), "--llm-slo", "client_own_stamp>=90%", t="3s"
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "token arrival stamped by the kernel" in p.stderr
    s = json.loads((tmp_path / "summary.json").read_text())
    # most tokens have a read of their own (97-99.5 % here: the emulator itself sometimes
    # writes two due tokens at once, so the exact share is the server's as much as ours)
    assert s["timestamps"] == "kernel" and s["client_own_stamp"] >= 0.9
    assert isinstance(s["client_bound"], bool) and s["stamp_fallbacks"] == 0
    assert s["count_read_lateness"] > 0 and s["count_send_lateness"] == s["completed"]
    rec = next(json.loads(x) for x in records.read_text().splitlines() if '"error":null' in x)
    assert rec["timestamps"] == "kernel" and isinstance(rec["shared"], list)
    p = headless(tmp_path, "--llm-timestamps", "user", t="3s")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "stamped in user space" in p.stderr
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["timestamps"] == "user" and s["client_own_stamp"] is None


def test_short_outputs_are_reported_with_the_ignore_eos_remedy(tmp_path):
    p = run(["-f", "locustfiles/chat.py", "--llm-max-tokens", "32", "--headless", "-u", "4",
             "-r", "4", "-t", "3s", "--llm-summary", str(tmp_path / "s.json"),
             "--llm-serve-args", f"{EMU} --emu-eos-prob 0.2"])  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    s = summary(tmp_path / "s.json", p)
    assert s["output_tokens_vs_requested"] < 0.5
    assert s["total_requested_output_tokens"] == 32 * s["completed"]
    assert "pass --llm-ignore-eos" in p.stderr
    # with ignore_eos (the first test's runs) outputs match what was asked: no warning there


def test_a_server_message_saying_aborted_still_fails_the_run(tmp_path):
    # the exit code follows the failure's kind, not its text: an HTTP 500 whose body says
    # "aborted: ..." is a server failure like any other
    import gevent

    from tests.client.fakeserver import FakeServer, plain

    server = FakeServer()
    body = b'{"error": {"message": "aborted: engine died", "code": 500}}'
    server.routes["/v1/chat/completions"] = plain("500 Internal Server Error", body)
    try:
        args = ["--host", server.url, "--llm-model", "m", "--llm-skip-preflight"]
        p = subprocess.Popen(
            [*LOCUST, *COMMON, "--headless", "-u", "1", "-t", "2s"]
            + ["--llm-summary", str(tmp_path / "summary.json"), *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 60
        while p.poll() is None and time.time() < deadline:
            gevent.sleep(0.1)  # the fake server runs in this process's hub
        if p.poll() is None:
            p.kill()
        err = p.communicate()[1]
    finally:
        server.stop()
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["failed"] > 0, s
    assert list(s["errors"]) == ["HTTP 500"] and "engine died" in s["error_examples"]["HTTP 500"]
    assert p.returncode == 1, err[-2000:]
