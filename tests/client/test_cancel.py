"""Client-side cancellation against the emulator as a real process: what the client records,
and what the server sees (its running count and its abort counter)."""

from __future__ import annotations

import re
import time
import urllib.request

import gevent
import pytest
from locust.env import Environment
from locust.event import Events

from locust_llm import OpenAIChatUser, OpenAICompletionsUser
from locust_llm.workload.cancel import cancel_plan
from tests.emulator.conftest import Emulator


class Opts:
    llm_model = None
    llm_cancel_rate = "1"
    llm_cancel_after = "5"
    llm_seed = 0
    llm_timestamps = "user"


@pytest.fixture(scope="module")
def emu():
    e = Emulator(["--emu-ttft-ms", "20", "--emu-itl-ms", "20"])
    yield e
    e.kill()


def metric(url: str, name: str, label: str = "") -> float:
    body = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    pat = re.compile(rf"^{re.escape(name)}\{{[^}}]*{re.escape(label)}[^}}]*\}} (\S+)$", re.M)
    return sum(float(v) for v in pat.findall(body))


def make_users(url: str, n: int, cls=OpenAIChatUser, **opts):
    env = Environment(user_classes=[cls], events=Events(), host=url)
    env.parsed_options = type("O", (Opts,), opts)()
    env.create_local_runner()
    users = [type("U", (cls,), {"abstract": False, "host": url})(env) for _ in range(n)]
    users[0].llm.model = "locust-llm/emulator"
    return env, users


def finished(url: str) -> float:
    return metric(url, "vllm:request_success_total")


def ttfts(url: str) -> float:
    return metric(url, "vllm:time_to_first_token_seconds_count")


def test_every_request_cancelled_after_5_tokens_and_the_server_frees_its_slots(emu):
    env, users = make_users(emu.url, 4)
    before, ttft_before = finished(emu.url), ttfts(emu.url)
    # 200 tokens at 20 ms would stream for 4 s: the client hangs up after 5
    jobs = [gevent.spawn(u.chat, "hello there", max_tokens=200) for u in users for _ in (0,)]
    gevent.sleep(0.1)
    assert metric(emu.url, "vllm:num_requests_running") == 4  # all four on the server
    results = [j.get(timeout=10) for j in jobs]
    t_done = time.monotonic()
    for r in results:
        assert r.cancelled and not r.aborted and r.error_kind == "cancelled", r.error
        assert r.output_tokens == 5 and r.ttft is not None and r.e2e is None
        assert "after 5 tokens" in r.error
    # the server noticed the disconnects: slots free long before the 4 s the streams had left
    while metric(emu.url, "vllm:num_requests_running") > 0:
        assert time.monotonic() - t_done < 1.0, "the emulator kept running cancelled requests"
        gevent.sleep(0.02)
    # as vLLM 0.32: a request its client left is aborted in the front end, before any
    # finished-request stats (no request_success_total, any reason), but its TTFT was observed
    assert finished(emu.url) == before and ttfts(emu.url) - ttft_before == 4
    row = env.stats.get("/v1/chat/completions", "POST")
    assert row.num_failures == 0 and row.num_requests == 0  # like aborts: left out of the rows
    s = env.llm.summary()
    assert (s["cancelled"], s["cancelled_output_tokens"]) == (4, 20)
    assert s["completed"] == 0 and s["failed"] == 0 and s["aborted"] == 0
    assert s["total_requests"] == 4 and s["count_ttft"] == 0  # nothing in vLLM's fields
    assert s["count_ttft_cancelled"] == 4
    assert "cancelled all 4" in s["no_data_reason"]


def test_cancel_after_a_time_in_completions(emu):
    env, (u,) = make_users(emu.url, 1, OpenAICompletionsUser, llm_cancel_after="150ms")
    t = time.monotonic()
    r = u.complete("hello", max_tokens=200)
    took = time.monotonic() - t
    assert r.cancelled and "after 150 ms" in r.error
    assert 0.14 < took < 0.5, took
    # 20 ms TTFT, then a token per 20 ms: about 6 tokens by 150 ms
    assert 3 <= r.output_tokens <= 8, r.output_tokens
    assert env.llm.summary()["cancelled"] == 1


def test_half_cancelled_with_a_seed_is_reproducible(emu):
    shares = []
    for _ in range(2):
        env, (u,) = make_users(emu.url, 1, llm_cancel_rate="0.5", llm_seed=7)
        rs = [u.chat("hi", max_tokens=8) for _ in range(16)]
        shares.append([r.cancelled for r in rs])
        s = env.llm.summary()
        assert s["cancelled"] + s["completed"] == 16 and s["failed"] == 0
        # the requests not picked complete normally, with vLLM's fields
        assert s["count_ttft"] == s["completed"]
    assert shares[0] == shares[1]
    assert 3 <= sum(shares[0]) <= 13
    other = cancel_plan("0.5", "5", seed=8)
    assert [other.next() is not None for _ in range(16)] != shares[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--llm-cancel-rate", "1.5", "--llm-cancel-after", "5"], "--llm-cancel-rate"),
        (["--llm-cancel-rate", "lots", "--llm-cancel-after", "5"], "--llm-cancel-rate"),
        (["--llm-cancel-rate", "0.5"], "needs --llm-cancel-after"),
        (["--llm-cancel-rate", "0.5", "--llm-cancel-after", "5 tokens"], "is not a count"),
        (["--llm-cancel-after", "0"], "whole number >= 1"),
        (["--llm-cancel-after", "0ms"], "above 0"),
        (["--llm-images", "many"], "--llm-images"),
        (["--llm-image-size", "uniform:512:64"], "--llm-image-size"),
    ],
)
def test_bad_values_stop_the_run_with_one_line(args, words):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    p = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "locustfiles/chat.py", "--headless", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LOCUST_LLM_CHECK_ONLY": "1"},
    )
    lines = [x for x in p.stderr.splitlines() if "locust-llm" in x]
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert len(lines) == 1 and words in lines[0] and "pre-flight failed" in lines[0], lines


def test_a_headless_run_cancels_every_request_and_nothing_fails(tmp_path):
    """The whole path a user runs: locust, the built-in emulator, records, CSV, summary."""
    import csv
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    p = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "locustfiles/chat.py", "--headless",
         "-u", "3", "-r", "3", "-t", "3s", "--llm-max-tokens", "64", "--llm-ignore-eos",
         "--llm-serve-args", "--emu-ttft-ms 20 --emu-itl-ms 10",
         "--llm-cancel-rate", "1", "--llm-cancel-after", "5",
         "--llm-records", str(tmp_path / "r.jsonl"), "--llm-summary", str(tmp_path / "s.json"),
         "--csv", str(tmp_path / "run")],
        cwd=root, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    recs = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    done = [r for r in recs if not r["aborted"]]  # the run's end may cut some off
    assert len(done) >= 10
    assert all(r["cancelled"] and r["error_kind"] == "cancelled" for r in done)
    assert all(r["output_tokens"] == 5 for r in done), [r["output_tokens"] for r in done]
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["cancelled"] == len(done) and s["cancelled_output_tokens"] == 5 * len(done)
    assert s["failed"] == 0 and s["completed"] == 0 and s["errors"] == {}
    rows = list(csv.DictReader(open(tmp_path / "run_stats.csv")))
    assert all(row["Failure Count"] == "0" for row in rows), rows
    assert "Cancelled by the client:" in p.stderr


def test_a_request_cancelled_while_queued_leaves_the_queue_at_once():
    """vLLM aborts a waiting request as soon as its client goes away; so must the emulator,
    though it writes nothing to a queued request that could fail."""
    e = Emulator(["--emu-ttft-ms", "20", "--emu-itl-ms", "20", "--max-num-seqs", "1"])
    try:
        _, (busy,) = make_users(e.url, 1, llm_cancel_rate="0")
        _, (leaver,) = make_users(e.url, 1, llm_cancel_after="300ms")
        first = gevent.spawn(busy.chat, "hold the only slot", max_tokens=150)  # 3 s
        gevent.sleep(0.1)
        second = gevent.spawn(leaver.chat, "wait behind it", max_tokens=10)
        gevent.sleep(0.15)
        assert metric(e.url, "vllm:num_requests_waiting") == 1
        r = second.get(timeout=5)
        assert r.cancelled and r.output_tokens == 0 and r.ttft is None
        t = time.monotonic()
        while metric(e.url, "vllm:num_requests_waiting") > 0:
            assert time.monotonic() - t < 0.5, "the emulator kept a queued request its client left"
            gevent.sleep(0.02)
        assert metric(e.url, "vllm:num_requests_running") == 1  # the first one streams on
        first.kill()
    finally:
        e.kill()


def test_a_picked_request_that_ends_first_completes_as_any_other(emu):
    env, (u,) = make_users(emu.url, 1)  # every request picked, hang up after 5 tokens
    r = u.chat("short", max_tokens=3)
    assert r.ok and not r.cancelled and r.output_tokens == 3 and r.e2e is not None
    s = env.llm.summary()
    assert s["completed"] == 1 and s["cancelled"] == 0
    assert env.stats.get("/v1/chat/completions", "POST").num_requests == 1
