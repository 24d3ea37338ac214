"""The emulator's pooling endpoints against a real process: vLLM's shapes, errors, routes,
deterministic vectors, latency from the engine, and /metrics."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import orjson

from .client import get, post


def _metric(text: bytes, name: str, **labels: str) -> float:
    for line in text.decode().splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in /metrics")


def test_embeddings_shape_usage_and_deterministic_vectors(emulator):
    e = emulator("m", "--runner", "pooling", "--emu-ttft-ms", "30", "--emu-embed-dim", "16")
    body = {"model": "m", "input": ["hello world", "the quick brown fox"]}
    t = time.perf_counter()
    status, hdrs, raw, _ = post(e.port, "/v1/embeddings", body, {"X-Request-Id": "abc"})
    took = time.perf_counter() - t
    assert status == 200 and hdrs["content-type"] == "application/json"
    doc = orjson.loads(raw)
    assert list(doc) == ["id", "object", "created", "model", "data", "usage"]
    assert doc["id"] == "embd-abc" and doc["object"] == "list" and doc["model"] == "m"
    assert [list(d) for d in doc["data"]] == [["index", "object", "embedding"]] * 2
    assert [d["index"] for d in doc["data"]] == [0, 1]
    assert {d["object"] for d in doc["data"]} == {"embedding"}
    vecs = [d["embedding"] for d in doc["data"]]
    assert all(len(v) == 16 for v in vecs)
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vecs)
    assert vecs[0] != vecs[1]
    n = 3 + 5  # the emulator counts ceil(characters / 4) tokens per text
    assert doc["usage"] == {
        "prompt_tokens": n,
        "total_tokens": n,
        "completion_tokens": 0,
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
    }
    assert took >= 0.03  # the prefill model's latency, not an instant answer
    # the same input gives the same vector, in any batch
    _, _, raw2, _ = post(e.port, "/v1/embeddings", {"input": "the quick brown fox"})
    assert orjson.loads(raw2)["data"][0]["embedding"] == vecs[1]
    _, _, m = get(e.port, "/metrics")
    assert _metric(m, "vllm:request_success_total", finished_reason="stop") == 3
    assert _metric(m, "vllm:prompt_tokens_total") == n + 5
    assert _metric(m, "vllm:generation_tokens_total") == 0
    assert _metric(m, "vllm:e2e_request_latency_seconds_count") == 3


def test_rerank_sorted_top_n_and_score(emulator):
    e = emulator("m", "--convert", "embed", "--emu-ttft-ms", "1")
    docs = ["alpha beta", "gamma", "delta epsilon zeta"]
    status, _, raw, _ = post(e.port, "/v1/rerank", {"query": "q", "documents": docs, "top_n": 2})
    assert status == 200
    doc = orjson.loads(raw)
    assert list(doc) == ["id", "model", "usage", "results"]
    assert re.fullmatch(r"score-[0-9a-f]{16}", doc["id"])
    # bi-encoder: the query and each document embedded once (ceil(characters / 4) tokens)
    assert doc["usage"] == {"prompt_tokens": 1 + 3 + 2 + 5, "total_tokens": 11}
    res = doc["results"]
    assert len(res) == 2
    assert [list(r) for r in res] == [["index", "document", "relevance_score"]] * 2
    assert res[0]["relevance_score"] >= res[1]["relevance_score"]
    assert all(r["document"] == {"text": docs[r["index"]], "multi_modal": None} for r in res)
    # /score gives the same scores, in document order
    status, _, raw, _ = post(e.port, "/score", {"text_1": "q", "text_2": docs})
    score = orjson.loads(raw)
    assert status == 200 and score["object"] == "list"
    by_index = {d["index"]: d["score"] for d in score["data"]}
    assert all(by_index[r["index"]] == r["relevance_score"] for r in res)
    # an embedding model has cosine scores; a classifier (cross-encoder) probabilities
    c = emulator("m", "--convert", "classify", "--emu-ttft-ms", "1")
    _, _, raw, _ = post(c.port, "/rerank", {"query": "q", "documents": docs})
    cross = orjson.loads(raw)
    assert all(0.0 <= r["relevance_score"] <= 1.0 for r in cross["results"])
    assert cross["usage"]["prompt_tokens"] == 3 * 1 + 3 + 2 + 5  # the query in every pair
    status, _, raw, _ = post(c.port, "/v1/embeddings", {"input": ["x"]})
    assert (status, raw) == (404, b'{"detail":"Not Found"}')  # a classifier embeds nothing


def test_errors_and_routes_as_vllm(emulator):
    gen = emulator("m", "--emu-ttft-ms", "1")
    for path in ("/v1/embeddings", "/v1/rerank", "/score"):
        status, _, raw, _ = post(gen.port, path, {"input": ["x"]})
        assert (status, raw) == (404, b'{"detail":"Not Found"}'), path
    pool = emulator("m", "--runner", "pooling", "--emu-ttft-ms", "1", "--max-model-len", "8")
    status, _, raw, _ = post(pool.port, "/v1/chat/completions", {"messages": []})
    assert (status, raw) == (404, b'{"detail":"Not Found"}')
    status, _, raw, _ = post(pool.port, "/v1/embeddings", {"model": "m", "input": []})
    assert status == 400
    assert orjson.loads(raw) == {
        "error": {
            "message": "You must pass at least one prompt",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }
    status, _, raw, _ = post(pool.port, "/v1/rerank", {"query": "q", "documents": []})
    assert status == 400
    assert orjson.loads(raw)["error"]["message"] == "At least one text_pair element must be given"
    # each input is checked against max_model_len as vLLM checks a prompt (9 tokens > 8)
    status, _, raw, _ = post(pool.port, "/v1/embeddings", {"input": ["ok", "x" * 36]})
    assert status == 400
    err = orjson.loads(raw)["error"]
    assert err["param"] == "input_tokens"
    assert err["message"].startswith(
        "This model's maximum context length is 8 tokens. However, your prompt contains "
        "at least 9 input tokens"
    )
    # emulated faults answer pooling routes too
    status, _, raw, _ = post(pool.port, "/v1/rerank", {"query": "q", "documents": ["d"]},
                             {"X-Return-Error": "429"})  # fmt: skip
    assert status == 429 and orjson.loads(raw)["error"]["code"] == 429
    status, _, raw, _ = post(pool.port, "/v1/embeddings", {"model": "other", "input": ["x"]})
    assert status == 404
    assert orjson.loads(raw)["error"] == {
        "message": "The model `other` does not exist.",
        "type": "NotFoundError",
        "param": None,
        "code": 404,
    }


FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "vllm" / "pooling.json"


def _shape(x):
    """Keys in order and value types, recursively (lists by their items' shapes)."""
    if isinstance(x, dict):
        return [(k, _shape(v)) for k, v in x.items() if k != "embedding_len"]
    if isinstance(x, list):
        return ["list", *sorted({repr(_shape(v)) for v in x})]
    return type(x).__name__


def test_answers_match_recorded_vllm(emulator):
    """The requests real vLLM 0.32 answered (an embedding model): same statuses, same keys
    and types, same error bodies, same ids' form, same /metrics counts per engine request."""
    rec = json.loads(FIXTURE.read_text())
    e = emulator("tiny", "--convert", "embed", "--emu-ttft-ms", "1", "--emu-embed-dim", "128")
    for name, want in rec.items():
        if not isinstance(want, dict) or "path" not in want:
            continue
        status, _, raw, _ = post(e.port, want["path"], want["request"])
        got = orjson.loads(raw)
        assert status == want["status"], name
        if status != 200:
            assert got == want["body"], name  # error bodies word for word
            continue
        assert _shape(got) == _shape(want["body"]), name
        prefix = want["body"]["id"].split("-")[0]
        assert re.fullmatch(prefix + r"-[0-9a-f]{16}", got["id"]), name
        if name == "embeddings":
            assert [len(d["embedding"]) for d in got["data"]] == [
                d["embedding_len"] for d in want["body"]["data"]
            ]
        if name == "rerank":  # top_n results of the query's documents, best first
            assert len(got["results"]) == len(want["body"]["results"]) == 2
    _, _, m = get(e.port, "/metrics")
    for line in rec["metrics"]:
        if "prompt_tokens" in line:
            continue  # the emulator counts tokens by characters, not by a tokenizer
        name_labels, value = line.rsplit(" ", 1)
        name, labels = name_labels.split("{", 1)
        kv = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        kv.pop("engine"), kv.pop("model_name")
        if kv.get("finished_reason") in ("error", "repetition"):
            continue  # reasons the emulator's metrics do not list (no such outcomes there)
        assert _metric(m, name, **kv) == float(value), line
