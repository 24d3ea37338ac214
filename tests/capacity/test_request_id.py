"""X-Request-Id: sent with every request (vLLM takes it as the request id) and kept in the
records, so client records join server logs. A stdlib server on 127.0.0.1 logs the headers."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.runs import records, run_locust

CHUNKS = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "length"}]},
    {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}},
]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def log_message(self, *a):  # quiet
        pass

    def do_GET(self):  # /v1/models, for the pre-flight
        body = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Handler.seen.append(self.headers.get("X-Request-Id"))
        body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in CHUNKS)
        body += b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_x_request_id_sent_and_recorded(tmp_path):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        rec = tmp_path / "r.jsonl"
        p = run_locust(
            ["-f", "locustfiles/chat.py", "--headless", "-u", "2", "-r", "2", "-t", "2s",
             "--host", f"http://127.0.0.1:{srv.server_port}", "--llm-model", "m",
             "--llm-records", str(rec), "--llm-backend", "none"],
            timeout=60,
        )  # fmt: skip
    finally:
        srv.shutdown()
    recs = records(rec)
    assert recs, p.stderr[-2000:]
    ids = [r["request_id"] for r in recs]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and len(set(ids)) == len(ids)
    assert set(ids) <= set(Handler.seen)  # every recorded id is the header the server got
