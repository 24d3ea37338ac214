"""Throwaway vLLM stand-in used only until `locust_llm.emulator` lands (stdlib, tests only)."""

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, default=8000)
ap.add_argument("--served-model-name")
ap.add_argument("--api-key")
args, _ = ap.parse_known_args()
NAME = args.served_model_name or args.model
TOKENS = int(os.environ.get("STANDIN_TOKENS", "20"))
DELAY = float(os.environ.get("STANDIN_ITL", "0.02"))


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _json(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def do_GET(self):
        if self.path == "/health":
            return self._json(200, {})
        if self.path == "/v1/models":
            return self._json(200, {"object": "list", "data": [{"id": NAME, "object": "model"}]})
        if self.path in ("/emulator/info", "/version"):
            return self._json(
                200,
                {
                    "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
                    "affinity": sorted(os.sched_getaffinity(0)),
                },
            )
        self._json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(n) or b"{}")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(data):
            b = f"data: {data}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
            self.wfile.flush()

        k = min(TOKENS, body.get("max_tokens") or TOKENS)
        time.sleep(DELAY)
        for i in range(k):
            send(json.dumps({"choices": [{"index": 0, "delta": {"content": f"t{i} "}}]}))
            time.sleep(DELAY)
        send("[DONE]")
        self.wfile.write(b"0\r\n\r\n")


srv = ThreadingHTTPServer((args.host, args.port), H)
srv.daemon_threads = True
print(f"stand-in serving {NAME} on http://{args.host}:{args.port}", flush=True)
srv.serve_forever()
sys.exit(0)
