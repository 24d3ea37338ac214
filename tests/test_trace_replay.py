"""Trace replay end to end: ``locustfiles/trace.py`` against the emulator (headless Locust)."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from locust_llm.workload.trace import load_trace
from locust_llm.workload.trace_prompts import record_prompt

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
LOCUST = str(Path(PY).with_name("locust"))


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


@pytest.fixture
def emulator():
    procs = []

    def start(*args: str) -> str:
        p = subprocess.Popen(
            [PY, "-m", "locust_llm.emulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            cwd=ROOT,
        )
        procs.append(p)
        deadline = time.time() + 20
        while time.time() < deadline:
            m = re.search(r"http://[0-9.]+:\d+", p.stdout.readline() or "")
            if m:
                return m.group(0)
            if p.poll() is not None:
                break
        raise RuntimeError("emulator did not start")

    yield start
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(10)


def _mooncake(tmp: Path, rows: list[tuple[int, int, int, list[int]]], name="t.jsonl") -> Path:
    path = tmp / name
    path.write_text(
        "".join(
            json.dumps({"timestamp": t, "input_length": i, "output_length": o, "hash_ids": h})
            + "\n"
            for t, i, o, h in rows
        )
    )
    return path


def _replay(host: str, tmp: Path, trace: Path, *args: str, timeout: float = 90):
    records, summary = tmp / "records.jsonl", tmp / "summary.json"
    cmd = [LOCUST, "-f", "locustfiles/trace.py", "--headless", "-H", host]
    cmd += ["--llm-backend", "none", "--llm-trace", str(trace), "--only-summary"]
    cmd += ["--llm-records", str(records), "--llm-summary", str(summary), *args]
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - t0
    assert summary.exists(), r.stdout[-3000:] + r.stderr[-3000:]
    recs = [json.loads(x) for x in records.read_text().splitlines() if x.strip()]
    return recs, json.loads(summary.read_text()), r, took


# 40 records over 3.63 s: bursts of four 10 ms apart, then a 370 ms gap
TIMES = [(k // 4) * 400 + (k % 4) * 10 for k in range(40)]


@pytest.mark.parametrize("processes", [1, 2])
def test_records_sent_at_their_times_each_once(emulator, tmp_path, processes):
    host = emulator("--emu-ttft-ms", "5", "--emu-itl-ms", "2")
    trace = _mooncake(
        tmp_path, [(t, 700, 4, [0, 1] if k % 2 else [k]) for k, t in enumerate(TIMES)]
    )
    args = ["-u", "16", "-r", "100", "--llm-trace-speed", "2"]
    if processes > 1:  # a port of its own: concurrent runs would collide on Locust's 5557
        port = _free_port()
        args += ["--processes", str(processes), "--master-bind-port", port, "--master-port", port]
    recs, s, r, took = _replay(host, tmp_path, trace, *args)
    assert r.returncode == 0, r.stderr[-2000:]
    # each record exactly once, over all processes; nothing after the trace's end
    assert sorted(x["trace_index"] for x in recs) == list(range(40))
    assert all(x["trace_loop"] == 0 and x["error"] is None for x in recs)
    # the run ended with the trace (1.8 s at speed 2), not at a time limit
    assert "trace replay finished (40 requests sent)" in r.stderr
    assert took < 30
    # sent at the recorded offsets / speed: each send is its scheduled time plus its lag
    # (one shared start for every process, once all users are spawned), and the lag is
    # small: a few late ones are tolerated on a loaded 2-core host; none is skipped
    by_row = {x["trace_index"]: x for x in recs}
    t0 = by_row[0]["t_start"] - by_row[0]["schedule_lag"] / 1000
    for k, t in enumerate(TIMES):
        x = by_row[k]
        assert x["t_start"] == pytest.approx(t0 + t / 2000 + x["schedule_lag"] / 1000, abs=0.005)
    lags = sorted(x["schedule_lag"] for x in recs)
    assert lags[0] >= 0 and lags[20] < 20 and lags[35] < 60 and lags[-1] < 1000, lags
    tr = s["trace"]
    assert tr["sent"] == 40 and tr["records"] == 40 and s["count_schedule_lag"] == 40
    assert tr["requested_rate"] == pytest.approx(39 / (TIMES[-1] / 1000 / 2))
    assert tr["achieved_rate"] == pytest.approx(tr["requested_rate"], rel=0.1)
    assert s["meta"]["arrival"] == "trace" and s["completed"] == 40


def test_late_records_go_out_at_once_never_skipped(emulator, tmp_path):
    # one slot and 300 ms requests against a record every 50 ms: the replay falls behind
    host = emulator("--emu-ttft-ms", "100", "--emu-itl-ms", "50")
    trace = _mooncake(tmp_path, [(k * 50, 100, 5, []) for k in range(8)])
    recs, s, r, _ = _replay(host, tmp_path, trace, "-u", "1", "-r", "1", "--llm-ignore-eos")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = sorted(recs, key=lambda x: x["t_start"])
    assert [x["trace_index"] for x in rows] == list(range(8))  # in order, none skipped
    lags = [x["schedule_lag"] for x in rows]
    assert lags[-1] > 1000 and lags == sorted(lags)  # each waits for the one before
    assert s["trace"]["late"] and s["p99_schedule_lag_ms"] > 1000
    assert "trace replay fell behind" in r.stderr
    assert s["trace"]["achieved_rate"] < s["trace"]["requested_rate"] / 3


def test_loop_replays_the_trace_again_until_the_time_limit(emulator, tmp_path):
    host = emulator("--emu-ttft-ms", "5", "--emu-itl-ms", "2")
    trace = _mooncake(tmp_path, [(k * 100, 100, 2, []) for k in range(5)])  # period 0.5 s
    recs, s, r, _ = _replay(
        host, tmp_path, trace, "-u", "4", "-r", "100", "--llm-trace-loop", "-t", "3s"
    )
    assert r.returncode == 0, r.stderr[-2000:]
    sent = {(x["trace_loop"], x["trace_index"]) for x in recs}
    assert len(sent) == len(recs)  # no (pass, row) twice
    assert max(x["trace_loop"] for x in recs) >= 3
    full = [lp for lp in range(max(lp for lp, _ in sent)) if all((lp, i) in sent for i in range(5))]
    assert full == list(range(len(full))) and len(full) >= 3


def _prefix_counters(host: str) -> tuple[float, float]:
    text = urllib.request.urlopen(host + "/metrics", timeout=10).read().decode()

    def value(name: str) -> float:
        return sum(float(v) for v in re.findall(rf"^vllm:{name}_total{{[^}}]*}} (\S+)", text, re.M))

    return value("prefix_cache_hits"), value("prefix_cache_queries")


def _shared_tokens(trace: Path, block_tokens: int) -> int:
    """Prompt tokens each record shares with an earlier one (longest common text prefix,
    4 characters a token), summed: what a prefix cache holding every earlier prompt hits."""
    texts = [
        record_prompt(r, block_tokens=block_tokens).text for r in load_trace(trace, "mooncake")
    ]
    return sum(
        max((len(os.path.commonprefix([t, u])) // 4 for u in texts[:k]), default=0)
        for k, t in enumerate(texts)
    )


def test_shared_blocks_hit_the_prefix_cache_as_the_trace_says(emulator, tmp_path):
    # the batching engine caches prefixes (16-token blocks); one request at a time, so each
    # has finished (and is cached) before the next arrives
    rows = [
        (0, 1100, 2, [7, 8]),  # new
        (600, 1300, 2, [7, 8, 9]),  # shares blocks 7, 8
        (1200, 900, 2, [7, 10]),  # shares block 7
        (1800, 800, 2, [11, 12]),  # new
        (2400, 1500, 2, [7, 8, 9]),  # shares 7, 8 and the part of 9 the second one had
    ]
    trace = _mooncake(tmp_path, rows)
    for block in (512, 32):  # 32: the same sharing at 1/16 of the length
        host = emulator("--emu-profile", "llama-3.1-8b-h100")
        out = tmp_path / str(block)
        out.mkdir()
        recs, s, r, _ = _replay(
            host, out, trace, "-u", "2", "-r", "100", "--llm-trace-block-tokens", str(block)
        )
        assert r.returncode == 0, r.stderr[-2000:]
        lengths = [x["prompt_tokens"] for x in sorted(recs, key=lambda x: x["trace_index"])]
        asked = [math.ceil(i * block / 512) for _, i, _, _ in rows]
        # usage counts the chat template's few tokens too
        assert all(0 <= n - a <= 8 for n, a in zip(lengths, asked, strict=True)), lengths
        hits, queries = _prefix_counters(host)
        expected = _shared_tokens(trace, block)
        assert expected > 0.4 * sum(asked)  # the trace shares a lot: a real test
        # the chat template's text shifts the 16-token blocks: one block per request at most
        assert abs(hits - expected) <= 16 * len(rows), (block, hits, expected)
        assert queries == pytest.approx(sum(lengths), abs=12 * len(rows))


BAD = [
    ('{"timestamp": 0, "input_length": 5, "output_length": 1}\n'
     '{"timestamp": 9, "input_length": -2, "output_length": 1}\n',
     "t.jsonl:2 field 'input_length': expected a whole number >= 0, got -2"),
    ('{"timestamp": 10, "input_length": 5, "output_length": 1}\n'
     '{"timestamp": 5, "input_length": 5, "output_length": 1}\n',
     "t.jsonl:2 field 'timestamp': timestamps must not decrease"),
    ('{"timestamp": 0, "input_length": 5, "output_length": 1}\n{"timestamp": 1, "input_le\n',
     "t.jsonl:2: not valid JSON"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,12,x\n",
     "t.csv:2 field 'GeneratedTokens': expected a whole number >= 0, got 'x'"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), BAD)
def test_bad_trace_stops_the_run_in_the_preflight(tmp_path, body, message):
    name = "t.csv" if body.startswith("TIMESTAMP") else "t.jsonl"
    (tmp_path / name).write_text(body)
    cmd = [LOCUST, "-f", "locustfiles/trace.py", "--headless", "-u", "2", "-r", "2"]
    # a port nobody listens on: the trace is checked before the server is contacted
    cmd += [
        "-H",
        "http://127.0.0.1:9",
        "--llm-backend",
        "none",
        "--llm-trace",
        str(tmp_path / name),
    ]
    cmd += ["--llm-records", str(tmp_path / "r.jsonl")]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    lines = [x for x in r.stderr.splitlines() if "pre-flight failed" in x]
    assert len(lines) == 1 and message in lines[0], r.stderr[-2000:]
    assert "Ramping to" not in r.stderr and "spawned" not in r.stderr  # no user started
    assert not (tmp_path / "r.jsonl").exists() or not (tmp_path / "r.jsonl").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--llm-trace", "missing.jsonl"], "--llm-trace missing.jsonl: no such file"),
        (["--llm-trace-format", "mooncake"], "trace.py needs --llm-trace FILE"),
        (
            ["--llm-trace", "scenarios/traces/mooncake-sample.jsonl", "--llm-trace-format", "x"],
            "--llm-trace-format 'x' is unknown; expected auto, mooncake, azure, jsonl",
        ),
    ],
)
def test_trace_option_errors_are_one_line(args, message):
    cmd = [LOCUST, "-f", "locustfiles/trace.py", "--headless", "-u", "1"]
    cmd += ["-H", "http://127.0.0.1:9", "--llm-backend", "none", *args]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    lines = [x for x in r.stderr.splitlines() if "pre-flight failed" in x]
    assert len(lines) == 1, r.stderr[-2000:]
    assert lines[0].startswith(f"locust-llm: pre-flight failed: {message}"), lines
