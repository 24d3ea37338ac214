"""Record real vLLM's pooling answers into tests/fixtures/vllm/pooling.json.

Starts vLLM (CPU) on models/tiny-llama as an embedding model (``--convert embed``) through
locust-llm's own CPU plan, sends the requests below, and writes status + JSON body of each
(embeddings cut to their first 4 values), plus the /metrics counters they moved. The emulator's
pooling tests replay the same requests and compare (tests/emulator/test_pooling.py).

    PYTHONPATH=$PWD .venv/bin/python scripts/record_pooling_answers.py
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from locust_llm.backends import Stack, make_plan

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "models" / "tiny-llama"
OUT = ROOT / "tests" / "fixtures" / "vllm" / "pooling.json"
DOCS = ["Hello world", "Goodbye", "fox"]
REQUESTS = {
    "embeddings": ("/v1/embeddings", {"model": "tiny", "input": ["Hello world", "The quick brown fox"]}),
    "embeddings_empty": ("/v1/embeddings", {"model": "tiny", "input": []}),
    "embeddings_unknown_model": ("/v1/embeddings", {"model": "nope", "input": ["x"]}),
    "rerank": ("/v1/rerank", {"model": "tiny", "query": "Hello", "documents": DOCS, "top_n": 2}),
    "rerank_empty": ("/v1/rerank", {"model": "tiny", "query": "Hello", "documents": []}),
    "score": ("/score", {"model": "tiny", "text_1": "Hello", "text_2": DOCS[:2]}),
    "chat": ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}),
}  # fmt: skip
COUNTERS = (
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:request_success_total",
    "vllm:time_to_first_token_seconds_count",
    "vllm:e2e_request_latency_seconds_count",
)


def post(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return {"status": r.status, "body": json.loads(r.read())}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": json.loads(e.read())}


def main() -> int:
    plan = make_plan(
        backend="cpu",
        model=str(MODEL_DIR),
        kvcache_gib=1,
        serve_args=["--max-model-len", "512", "--max-num-seqs", "8", "--convert", "embed"],
        models=[{"name": "tiny", "model": str(MODEL_DIR)}],
    )
    run_dir = Path("/tmp/locust-llm-record-pooling")
    run_dir.mkdir(exist_ok=True)
    stack = Stack(plan, run_dir, ready_timeout=400, log=print, verify=False)
    t0 = time.monotonic()
    try:
        stack.start()
        print(f"vLLM (pooling) up in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        base = stack.replicas[0].url
        out: dict = {
            "recorded_with": "vLLM 0.32.0 (CPU), models/tiny-llama --convert embed; embeddings "
            "cut to their first 4 values (embedding_len: the full size)",
        }
        for name, (path, body) in REQUESTS.items():
            got = post(base, path, body)
            for d in got["body"].get("data", []) if isinstance(got["body"], dict) else []:
                if isinstance(d.get("embedding"), list):
                    d["embedding_len"] = len(d["embedding"])
                    d["embedding"] = d["embedding"][:4]
            out[name] = {"path": path, "request": body, **got}
        with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
            text = r.read().decode()
        out["metrics"] = [x for x in text.splitlines() if x.startswith(COUNTERS)]
        OUT.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {OUT}", file=sys.stderr)
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
