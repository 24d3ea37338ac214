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


_DUMP = """
import json, sys
from vllm.entrypoints.serve.engine.protocol import UsageInfo, PromptTokenUsageInfo
from vllm.entrypoints.openai.chat_completion.serving import _make_prompt_tokens_details
out = {}
for chat, (p, c, cached, created) in zip((True, False), json.loads(sys.stdin.read())):
    u = UsageInfo(prompt_tokens=p, completion_tokens=c, total_tokens=p + c)
    u.prompt_tokens_details = (_make_prompt_tokens_details(True, cached, created, {}) if chat
                               else PromptTokenUsageInfo(cached_tokens=cached))
    key = "chat" if chat else "completions"
    # streams: exclude_none (chat also exclude_unset); full responses: model_dump()
    out[key + "_stream"] = json.loads(u.model_dump_json(exclude_unset=chat, exclude_none=True))
    out[key] = u.model_dump()
print(json.dumps(out))
"""


def test_usage_details_are_vllms_own_serialisation():
    """vLLM's pydantic models, dumped as its serving code dumps them, give the emulator's
    usage objects byte for byte in content (no server needed: only the vLLM venv)."""
    import json

    from .conftest import require_vllm
    from .helpers import vllm_python

    require_vllm()
    emu = Emulator(
        ["m", "--enable-prompt-tokens-details", "--emu-ttft-ms", "1", "--emu-itl-ms", "1"]
    )
    try:
        got = {}
        for path, key, body in (
            (
                "/v1/chat/completions",
                "chat",
                {"messages": [{"role": "user", "content": "x" * 200}]},
            ),
            ("/v1/completions", "completions", {"prompt": "y" * 200}),
        ):
            for stream in (True, False):
                full = {"model": "m", "max_tokens": 2, **body}
                if stream:
                    full |= {"stream": True, "stream_options": {"include_usage": True}}
                req = urllib.request.Request(emu.url + path, orjson.dumps(full),
                                             {"Content-Type": "application/json"})  # fmt: skip
                for _ in range(2):  # the second one hits the cache
                    with urllib.request.urlopen(req, timeout=30) as r:
                        raw = r.read()
                if stream:
                    events = [x[6:] for x in raw.split(b"\n\n") if x.startswith(b"data: {")]
                    got[key + "_stream"] = orjson.loads(events[-1])["usage"]
                else:
                    got[key] = orjson.loads(raw)["usage"]
    finally:
        emu.kill()
    u, c = got["chat_stream"], got["completions_stream"]
    assert u["prompt_tokens_details"]["cached_tokens"] > 0
    args = [
        [u["prompt_tokens"], u["completion_tokens"], *u["prompt_tokens_details"].values()],
        [
            c["prompt_tokens"],
            c["completion_tokens"],
            c["prompt_tokens_details"]["cached_tokens"],
            0,
        ],
    ]  # each request's own counts, put through vLLM's models
    want = json.loads(vllm_python(_DUMP, stdin=json.dumps(args)).splitlines()[-1])
    assert got == want
