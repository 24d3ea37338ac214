"""Trace replay against real vLLM: the trace's shared blocks are hits in vLLM's prefix cache."""

from __future__ import annotations

import json
import re
import urllib.request

from .conftest import API_KEY, MODEL
from .helpers import locust, records


def _prefix_hits(url: str) -> float:
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    return sum(
        float(v) for v in re.findall(r"^vllm:prefix_cache_hits_total{[^}]*} (\S+)", text, re.M)
    )


def _replay(stack, tmp_path, name: str, rows: list[list[int]]) -> tuple[list[dict], dict, float]:
    """Replay records 1.5 s apart (each done before the next: no in-flight overlap), with
    4 blocks of 64 tokens per record; vLLM's prefix-cache hit tokens during the run."""
    trace = tmp_path / f"{name}.jsonl"
    trace.write_text(
        "".join(
            json.dumps(
                {"timestamp": 1500 * k, "input_length": 2048, "output_length": 4, "hash_ids": ids}
            )
            + "\n"
            for k, ids in enumerate(rows)
        )
    )
    out = tmp_path / name
    out.mkdir()
    hits0 = _prefix_hits(stack.replicas[0].url)
    r = locust(
        [
            "-f",
            "locustfiles/trace.py",
            "--headless",
            "-u",
            "2",
            "-r",
            "2",
            "--host",
            stack.url,
            "--llm-api-key",
            API_KEY,
            "--llm-model",
            MODEL,
            "--llm-trace",
            str(trace),
            "--llm-trace-block-tokens",
            "64",
            "--llm-ignore-eos",
            "--llm-records",
            str(out / "records.jsonl"),
            "--llm-summary",
            str(out / "s.json"),
        ],  # fmt: skip
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    hits1 = _prefix_hits(stack.replicas[0].url)
    return records(out / "records.jsonl"), json.loads((out / "s.json").read_text()), hits1 - hits0


def test_shared_trace_blocks_are_prefix_cache_hits(vllm_stack, tmp_path):
    # 256 words a prompt (~340 tokens of this tokenizer, under max-model-len 512)
    unique, _, none = _replay(vllm_stack, tmp_path, "unique", [[1, 2, 3, 4], [5, 6, 7, 8]])
    assert [x["error"] for x in unique] == [None, None]
    assert none == 0  # nothing shared: nothing hit (the chat template is under a block)
    shared, s, hits = _replay(
        vllm_stack, tmp_path, "shared", [[11, 12, 13, 14], [11, 12, 13, 15], [11, 12, 16, 17]]
    )
    assert sorted(x["trace_index"] for x in shared) == [0, 1, 2]
    assert s["trace"]["sent"] == 3 and not s["trace"]["late"]
    # 3 then 2 shared blocks of 64 words (~85 tokens each): vLLM hits whole KV blocks of
    # those prefixes, so at least one block each, and never more than the shared tokens
    prompt = sorted(shared, key=lambda x: x["trace_index"])[0]["prompt_tokens"]
    assert 0 < hits <= prompt * (3 + 2) / 4, (hits, prompt)
