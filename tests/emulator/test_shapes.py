"""The engine model shows the shapes of a real vLLM under load."""

from __future__ import annotations

import time

import gevent
import orjson
from prometheus_client.parser import text_string_to_metric_families

from .client import Conn, get, sse_events

CHAT = "/v1/chat/completions"


def closed_loop(port: int, users: int, duration: float, max_tokens: int, prompt: str) -> dict:
    """``users`` streams back to back for ``duration`` s: output tok/s and mean TTFT."""
    ttfts: list[float] = []
    tokens = [0]
    stop_at = time.perf_counter() + duration

    def user(i: int) -> None:
        c = Conn(port)
        try:
            while time.perf_counter() < stop_at:
                body = {
                    "messages": [{"role": "user", "content": f"{i} {prompt}"}],
                    "max_tokens": max_tokens,
                    "stream": True,
                }
                t0 = time.perf_counter()
                status, _, pieces = c.request("POST", CHAT, body)
                assert status == 200
                events = sse_events(pieces)
                ttfts.append(events[0][0] - t0)
                tokens[0] += len(events) - 2  # role chunk and [DONE]
        finally:
            c.close()

    t_start = time.perf_counter()
    gevent.joinall([gevent.spawn(user, i) for i in range(users)], raise_error=True)
    elapsed = time.perf_counter() - t_start
    return {"tps": tokens[0] / elapsed, "ttft": sum(ttfts) / len(ttfts), "n": len(ttfts)}


def scrape(port: int) -> dict:
    _, _, body = get(port, "/metrics")
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            if not s.labels.get("le") and "finished_reason" not in s.labels:
                out[s.name] = s.value
    return out


def test_concurrency_sweep_plateaus_past_max_num_seqs(emulator):
    # 8B-on-H100 roofline, slowed 3x so the test client is never the bottleneck
    emu = emulator(
        "--emu-profile", "llama-3.1-8b-h100", "--emu-time-scale", "3", "--max-num-seqs", "32"
    )
    res = {u: closed_loop(emu.port, u, 1.6, 12, "x" * 200) for u in (4, 16, 32, 64, 128)}
    tps = {u: r["tps"] for u, r in res.items()}
    ttft = {u: r["ttft"] for u, r in res.items()}
    print(res)
    assert tps[16] > 3.0 * tps[4]  # ~linear growth below max_num_seqs
    assert tps[32] > 1.6 * tps[16]
    assert tps[128] < 1.3 * tps[32] and tps[64] < 1.3 * tps[32]  # plateau past 32
    assert ttft[32] < 2.5 * ttft[4]  # flat while slots are free
    assert ttft[64] > 3 * ttft[32] and ttft[128] > 1.6 * ttft[64]  # then climbs steeply


def test_gauges_track_load(emulator):
    emu = emulator(
        "--emu-profile", "llama-3.1-8b-h100", "--emu-time-scale", "3", "--max-num-seqs", "8"
    )
    samples = []

    def watch():
        for _ in range(25):
            m = scrape(emu.port)
            samples.append((m["vllm:num_requests_running"], m["vllm:num_requests_waiting"]))
            gevent.sleep(0.04)

    g = gevent.spawn(watch)
    closed_loop(emu.port, 20, 1.0, 20, "hello")
    g.join()
    assert any(w > 0 for _, w in samples), samples
    assert max(r for r, _ in samples) == 8
    for r, w in samples:
        assert w == 0 or r == 8, samples  # waiting > 0 only when running == max_num_seqs
    final = scrape(emu.port)
    assert final["vllm:num_requests_running"] == 0 and final["vllm:num_requests_waiting"] == 0
    assert final["vllm:generation_tokens_total"] > 0


def mean_itl(port: int) -> float:
    m = scrape(port)
    return m["vllm:inter_token_latency_seconds_sum"] / m["vllm:inter_token_latency_seconds_count"]


def test_tp2_faster_per_token_than_tp1(emulator):
    itl = {}
    for tp in ("1", "2"):
        emu = emulator("--emu-profile", "llama-3.1-8b-h100", "-tp", tp, "--emu-time-scale", "2")
        closed_loop(emu.port, 8, 0.6, 16, "y" * 100)
        itl[tp] = mean_itl(emu.port)
        info = orjson.loads(get(emu.port, "/emulator/info")[2])
        assert info["tp"] == int(tp)
    print(itl)
    assert itl["2"] < 0.8 * itl["1"]
