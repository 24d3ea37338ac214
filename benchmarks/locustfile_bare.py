"""The floor to compare against: a bare FastHttpUser loop that only timestamps SSE lines.

No SSE parsing, no JSON, no metrics: what geventhttpclient + Locust cost by themselves.
Writes ``{"lines", "cpu_s", "wall_s"}`` to ``$BENCH_OUT`` at test stop.
"""

import json
import os
import time

from cpu_window import record
from locust import FastHttpUser, constant, task

_n = [0]
BODY = json.dumps(
    {
        "model": os.environ.get("BENCH_MODEL", "locust-llm/emulator"),
        "messages": [{"role": "user", "content": "bench"}],
        "max_tokens": int(os.environ.get("BENCH_MAX_TOKENS", "1024")),
        "ignore_eos": True,
        "stream": True,
    }
)


class BareUser(FastHttpUser):
    wait_time = constant(0)
    concurrency = 1
    network_timeout = 600.0

    @task
    def stream(self):
        perf = time.perf_counter
        with self.client.post(
            "/v1/chat/completions",
            data=BODY,
            stream=True,
            catch_response=True,
            headers={"Content-Type": "application/json", "Accept-Encoding": "identity"},
        ) as r:
            readline = r.stream.readline
            n = 0
            while True:
                line = readline(b"\n")
                perf()
                if not line:
                    break
                if line[:5] == b"data:":
                    n += 1
            _n[0] += n - 1  # minus [DONE]
            r.success()


record("lines", _n)
