"""Prefix-cache parity: a repeated prompt hits real vLLM's cache as it hits the emulator's.

The session server runs without ``--enable-prompt-tokens-details``, so its hits are read from
its own counters (``vllm:prefix_cache_queries/hits``) around two identical requests; the
emulator runs with the real server's block size (from ``vllm:cache_config_info``; vLLM's CPU
build picks 128) and must count, and report in usage, the same tokens.
"""

from __future__ import annotations

import time
import urllib.request

import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.emulator.conftest import Emulator

from .conftest import API_KEY, MODEL

PROMPT = [(i * 7919) % 8000 + 100 for i in range(300)]  # token ids: n is exact on both


def _metrics(url: str) -> tuple[float, float, int | None]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    q = h = 0.0
    bs = None
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "vllm:prefix_cache_queries_total":
                q += s.value
            elif s.name == "vllm:prefix_cache_hits_total":
                h += s.value
            elif s.name == "vllm:cache_config_info" and s.labels.get("block_size"):
                bs = int(s.labels["block_size"])
    return q, h, bs


def _complete(url: str, key: str | None) -> dict:
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 2, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url + "/v1/completions", orjson.dumps(body), headers)
    with urllib.request.urlopen(req, timeout=60) as r:
        events = [x[6:] for x in r.read().split(b"\n\n") if x.startswith(b"data: {")]
    return orjson.loads(events[-1])["usage"]


def _two_requests(url: str, key: str | None) -> tuple[float, float, int, dict]:
    """Growth of (queries, hits) over the same prompt sent twice, its tokens, the 2nd usage."""
    q0, h0, _ = _metrics(url)
    n = _complete(url, key)["prompt_tokens"]
    usage = _complete(url, key)
    deadline = time.monotonic() + 5
    while True:  # the counters follow the engine's step outputs
        q1, h1, _ = _metrics(url)
        if q1 - q0 >= 2 * n or time.monotonic() > deadline:
            return q1 - q0, h1 - h0, n, usage


def test_repeated_prompt_hits_as_in_the_emulator(replica_url):
    _, _, bs = _metrics(replica_url)
    assert bs, "vllm:cache_config_info has no block_size label"
    dq, dh, n, _ = _two_requests(replica_url, API_KEY)
    assert n == len(PROMPT)
    expected = (n - 1) // bs * bs  # whole blocks, never the last token
    assert (dq, dh) == (2 * n, expected), f"block size {bs}"
    emu = Emulator([MODEL, "--max-model-len", "512", "--block-size", str(bs),
                    "--enable-prompt-tokens-details", "--emu-ttft-ms", "1", "--emu-itl-ms", "1"])  # fmt: skip
    try:
        eq, eh, en, usage = _two_requests(emu.url, None)
    finally:
        emu.kill()
    assert (en, eq, eh) == (n, 2 * n, expected)
    assert usage["prompt_tokens_details"] == {"cached_tokens": expected}
