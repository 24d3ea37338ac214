"""The same requests for real vLLM and for the emulator, and what of their answers must agree.

`ask(base_url, model, key)` sends every case in `CASES` and returns the raw answers (status,
content type, SSE events or JSON body); `shape(answer)` keeps what must match between the two
servers (keys, value types, finish reasons, completion token counts, error status and type)
and drops what may differ (ids, times, text, prompt token counts: the tokenizers differ).

Recorded real-vLLM answers live in tests/fixtures/vllm/ so the emulator is compared against
vLLM even where no vLLM is installed. Re-record against a running server with
`python -m tests.vllm.wire record http://127.0.0.1:PORT MODEL KEY`.
"""

from __future__ import annotations

import http.client
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vllm"
LONG_PROMPT = " ".join(["word"] * 1200)  # over --max-model-len 512 on any tokenizer

# name -> (method, path, body, use the right key)
CASES: dict[str, tuple[str, str, dict | None, bool]] = {
    "chat_stream": (
        "POST",
        "/v1/chat/completions",
        {
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 5,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        True,
    ),
    "completions_stream": (
        "POST",
        "/v1/completions",
        {
            "prompt": "Say hello.",
            "max_tokens": 3,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        True,
    ),
    "chat": (
        "POST",
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "ignore_eos": True},
        True,
    ),
    "completions": (
        "POST",
        "/v1/completions",
        {"prompt": "Hi", "max_tokens": 3, "ignore_eos": True},
        True,
    ),
    "unknown_model": (
        "POST",
        "/v1/chat/completions",
        {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}], "stream": True},
        True,
    ),
    "max_tokens_too_large": (
        "POST",
        "/v1/completions",
        {"prompt": "x", "max_tokens": 100000, "stream": True},
        True,
    ),
    "prompt_too_long": (
        "POST",
        "/v1/completions",
        {"prompt": LONG_PROMPT, "max_tokens": 4, "stream": True},
        True,
    ),
    "wrong_key": (
        "POST",
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x"}], "max_tokens": 2, "stream": True},
        False,
    ),
    "models": ("GET", "/v1/models", None, True),
}


def request(base_url: str, method: str, path: str, body: dict | None, headers: dict) -> dict:
    u = urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    data = json.dumps(body).encode() if body is not None else None
    hdrs = {"Content-Type": "application/json", "Accept-Encoding": "identity", **headers}
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        raw = r.read().decode()
        out: dict = {"status": r.status, "content_type": r.getheader("content-type")}
    finally:
        conn.close()
    if (out["content_type"] or "").startswith("text/event-stream"):
        events = []
        for line in raw.split("\n"):
            if line.startswith("data: "):
                payload = line[len("data: ") :]
                events.append(payload if payload == "[DONE]" else json.loads(payload))
        out["events"] = events
    elif (out["content_type"] or "").startswith("application/json"):
        out["body"] = json.loads(raw)
    else:
        out["text"] = raw
    return out


def ask(base_url: str, model: str, key: str) -> dict[str, dict]:
    answers = {}
    for name, (method, path, body, right_key) in CASES.items():
        if body is not None and "model" not in body:
            body = {"model": model, **body}
        headers = {"Authorization": f"Bearer {key if right_key else 'sk-wrong'}"}
        answers[name] = request(base_url, method, path, body, headers)
    return answers


def metric_families(text: str) -> dict[str, dict]:
    """`vllm:` families -> {"type", "labels": sorted label names over its samples}."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict] = {}
    for fam in text_string_to_metric_families(text):
        if not fam.name.startswith("vllm:") or fam.name.endswith("_created"):
            continue
        labels = sorted({k for s in fam.samples for k in s.labels if k != "le"})
        out[fam.name] = {"type": fam.type, "labels": labels}
    return out


KEEP_VALUES = {"finish_reason", "object", "role", "type", "code", "param", "completion_tokens"}


def _shape(v, key: str | None = None):
    if isinstance(v, dict):
        return {k: _shape(x, k) for k, x in sorted(v.items())}
    if isinstance(v, list):
        return [_shape(x) for x in v]
    if key in KEEP_VALUES:
        return v
    return type(v).__name__


def shape(answer: dict) -> dict:
    """What must match: status, media type, keys and value types of every event/body."""
    out = {"status": answer["status"], "content_type": answer["content_type"]}
    if "events" in answer:
        out["events"] = [e if e == "[DONE]" else _shape(e) for e in answer["events"]]
    if "body" in answer:
        out["body"] = _shape(answer["body"])
    return out


def load_fixture(name: str = "answers.json") -> dict:
    return json.loads((FIXTURES / name).read_text())


def record(base_url: str, model: str, key: str) -> None:
    import urllib.request

    FIXTURES.mkdir(parents=True, exist_ok=True)
    answers = ask(base_url, model, key)
    (FIXTURES / "answers.json").write_text(json.dumps(answers, indent=1, sort_keys=True) + "\n")
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    fams = metric_families(text)
    (FIXTURES / "metrics.json").write_text(json.dumps(fams, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(answers)} answers and {len(fams)} metric families in {FIXTURES}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "record":
        record(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("usage: python -m tests.vllm.wire record BASE_URL MODEL KEY")
