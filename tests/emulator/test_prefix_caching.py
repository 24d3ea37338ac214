"""The emulator's prefix cache end to end: usage details, TTFT and /metrics, as vLLM 0.32 does."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from locust_llm.emulator import text as textmod

from .client import get, post

CHAT = "/v1/chat/completions"
COMPL = "/v1/completions"
LONG = "The quick brown fox jumps over the lazy dog again and again. " * 12


def _counters(port: int) -> dict[tuple, float]:
    _, _, body = get(port, "/metrics")
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            if "cache" in s.name or s.name.startswith("vllm:prompt_tokens"):
                out[(s.name, s.labels.get("source"))] = s.value
    return out


def _stream(port: int, body: dict) -> tuple[float, dict]:
    """(TTFT in s from the send, the usage chunk) of one streamed request."""
    import time

    t0 = time.perf_counter()
    so = {"include_usage": True}
    status, _, _, events = post(port, CHAT if "messages" in body else COMPL,
                                {**body, "stream": True, "stream_options": so})  # fmt: skip
    assert status == 200
    return events[0][0] - t0, orjson.loads(events[-2][1])["usage"]


@pytest.mark.timing  # compares two TTFTs against the clock: run alone
def test_repeated_prompt_hits_whole_blocks_and_is_faster(emulator):
    emu = emulator("--emu-ttft-ms", "300", "--emu-itl-ms", "1", "--enable-prompt-tokens-details")
    msgs = [{"role": "user", "content": LONG}]
    n = textmod.chat_prompt(msgs)[1]
    ttft1, u1 = _stream(emu.port, {"messages": msgs, "max_tokens": 2})
    ttft2, u2 = _stream(emu.port, {"messages": msgs, "max_tokens": 2})
    hit = (n - 1) // 16 * 16
    assert u1["prompt_tokens"] == u2["prompt_tokens"] == n
    # chat streams carry created_cache_tokens too (vLLM 0.32), without the null multimodal field
    assert u1["prompt_tokens_details"] == {"cached_tokens": 0, "created_cache_tokens": n // 16 * 16}
    assert u2["prompt_tokens_details"] == {
        "cached_tokens": hit,
        "created_cache_tokens": n // 16 * 16 - hit,
    }
    # prefill of the cached tokens is skipped: TTFT shrinks to the uncached share of 300 ms
    assert ttft1 > 0.28 and ttft2 < 0.3 * (n - hit) / n + 0.05 < ttft1
    c = _counters(emu.port)
    assert c[("vllm:prefix_cache_queries_total", None)] == 2 * n
    assert c[("vllm:prefix_cache_hits_total", None)] == hit
    assert c[("vllm:prompt_tokens_cached_total", None)] == hit
    assert c[("vllm:prompt_tokens_total", None)] == 2 * n
    assert c[("vllm:prompt_tokens_by_source_total", "local_cache_hit")] == hit
    assert c[("vllm:prompt_tokens_by_source_total", "local_compute")] == 2 * n - hit
    assert c[("vllm:prompt_tokens_by_source_total", "external_kv_transfer")] == 0
    assert c[("vllm:prompt_tokens_cached_by_source_total", "device")] == hit
    assert c[("vllm:prompt_tokens_cached_by_source_total", "host")] == 0
    # a shared leading part hits up to the first block that differs
    other = [{"role": "user", "content": LONG[:200] + "something else entirely" * 10}]
    _, u3 = _stream(emu.port, {"messages": other, "max_tokens": 2})
    same = 2 + 200 // 4  # the role header, then 50 identical 4-character tokens
    assert u3["prompt_tokens_details"]["cached_tokens"] == same // 16 * 16


def test_completions_details_and_non_streamed_bodies(emulator):
    emu = emulator("--emu-ttft-ms", "5", "--emu-itl-ms", "1", "--enable-prompt-tokens-details")
    ids = list(range(1000, 1040))  # 40 token ids: 2 whole blocks
    _, u = _stream(emu.port, {"prompt": ids, "max_tokens": 2})
    assert u["prompt_tokens_details"] == {"cached_tokens": 0}  # completions: cached_tokens only
    _, u = _stream(emu.port, {"prompt": ids, "max_tokens": 2})
    assert u["prompt_tokens_details"] == {"cached_tokens": 32}
    _, _, raw, _ = post(emu.port, COMPL, {"prompt": ids, "max_tokens": 2})
    assert orjson.loads(raw)["usage"]["prompt_tokens_details"] == {
        "cached_tokens": 32,
        "created_cache_tokens": None,
        "multimodal_tokens": None,
    }
    msgs = [{"role": "user", "content": LONG}]
    n = textmod.chat_prompt(msgs)[1]
    post(emu.port, CHAT, {"messages": msgs, "max_tokens": 2})
    _, _, raw, _ = post(emu.port, CHAT, {"messages": msgs, "max_tokens": 2})
    assert orjson.loads(raw)["usage"]["prompt_tokens_details"] == {
        "cached_tokens": (n - 1) // 16 * 16,
        "created_cache_tokens": n // 16 * 16 - (n - 1) // 16 * 16,
        "multimodal_tokens": None,
    }


def test_without_the_details_flag_or_without_caching(emulator):
    msgs = [{"role": "user", "content": LONG}]
    n = textmod.chat_prompt(msgs)[1]
    emu = emulator("--emu-ttft-ms", "5", "--emu-itl-ms", "1")  # vLLM's default: no details
    for _ in range(2):
        _, u = _stream(emu.port, {"messages": msgs, "max_tokens": 2})
    assert "prompt_tokens_details" not in u
    _, _, raw, _ = post(emu.port, CHAT, {"messages": msgs, "max_tokens": 2})
    assert orjson.loads(raw)["usage"]["prompt_tokens_details"] is None
    assert _counters(emu.port)[("vllm:prefix_cache_hits_total", None)] == 2 * ((n - 1) // 16 * 16)
    off = emulator("--emu-ttft-ms", "5", "--emu-itl-ms", "1", "--no-enable-prefix-caching",
                   "--enable-prompt-tokens-details")  # fmt: skip
    for _ in range(2):
        _, u = _stream(off.port, {"messages": msgs, "max_tokens": 2})
    assert u["prompt_tokens_details"] == {"cached_tokens": 0, "created_cache_tokens": 0}
    c = _counters(off.port)  # no lookups at all while caching is off
    assert c[("vllm:prefix_cache_queries_total", None)] == 0
    assert c[("vllm:prompt_tokens_by_source_total", "local_compute")] == 2 * n


def test_block_size_flag_and_its_check(emulator):
    emu = emulator("--emu-ttft-ms", "5", "--emu-itl-ms", "1", "--enable-prompt-tokens-details",
                   "--block-size", "128")  # fmt: skip
    ids = list(range(300))
    for _ in range(2):
        _, u = _stream(emu.port, {"prompt": ids, "max_tokens": 2})
    assert u["prompt_tokens_details"] == {"cached_tokens": 256}
    bad = subprocess.run([sys.executable, "-m", "locust_llm.emulator", "--block-size", "0"],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert bad.returncode == 2 and "--block-size must be a positive" in bad.stderr


def test_cache_is_bounded_by_kv_blocks(emulator):
    # 4 blocks: a second prompt evicts the first one's blocks once it has finished
    emu = emulator("--emu-ttft-ms", "5", "--emu-itl-ms", "1", "--enable-prompt-tokens-details",
                   "--num-gpu-blocks-override", "4")  # fmt: skip
    a, b = list(range(65)), list(range(500, 565))  # 4 whole blocks each
    _stream(emu.port, {"prompt": a, "max_tokens": 2})
    _, u = _stream(emu.port, {"prompt": a, "max_tokens": 2})
    assert u["prompt_tokens_details"] == {"cached_tokens": 64}
    _stream(emu.port, {"prompt": b, "max_tokens": 2})
    _, u = _stream(emu.port, {"prompt": a, "max_tokens": 2})
    assert u["prompt_tokens_details"] == {"cached_tokens": 0}
