"""The reference a streaming client is held to: a plain FastHttpUser loop that decodes events.

What a careful hand-written Locust client does per token and nothing more: ``readline`` per
SSE line, one ``orjson.loads`` per ``data`` event, one ``perf_counter()`` per token chunk
(kept in a per-request list, as any ITL measurement must). No metrics path, no stats rows
beyond Locust's own. ``bench_client.py`` holds locust-llm's ingest rate against this loop's,
measured in the same run. Writes ``{"tokens", "cpu_s", "wall_s"}`` to ``$BENCH_OUT``.
"""

import json
import os
import time

import orjson
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
        "stream_options": {"include_usage": True},
    }
)


class PlainUser(FastHttpUser):
    wait_time = constant(0)
    concurrency = 1
    network_timeout = 600.0

    @task
    def stream(self):
        perf = time.perf_counter
        loads = orjson.loads
        with self.client.post(
            "/v1/chat/completions",
            data=BODY,
            stream=True,
            catch_response=True,
            headers={"Content-Type": "application/json", "Accept-Encoding": "identity"},
        ) as r:
            readline = r.stream.readline
            times = []
            try:
                while True:
                    line = readline(b"\n")
                    if not line:
                        break
                    if line[:6] != b"data: ":
                        continue
                    payload = line[6:-1]
                    if payload == b"[DONE]":
                        continue
                    if loads(payload).get("choices"):
                        times.append(perf())
            finally:  # a stream cut off at test stop still counts what it received
                _n[0] += len(times)
            r.success()


record("tokens", _n)
