"""Scrape replicas' `/metrics` and nginx `stub_status` once a second into server_metrics.jsonl.

Runs in a daemon thread of the scenario runner (never inside Locust: its greenlets must not
pay for parsing). Line format (documented in report/load.py, read by the report):

    {"t": epoch, "replica": "r0", "model": "m", "num_requests_running": 3.0,
     "num_requests_waiting": 0.0, "kv_cache_usage_perc": 0.12, "num_preemptions_total": 0.0,
     "prompt_tokens_total": 1234.0, "generation_tokens_total": 5678.0,
     "request_success_total": 42.0, "prefix_cache_queries_total": 1234.0,
     "prefix_cache_hits_total": 640.0}
    {"t": epoch, "nginx": {"active": 5, "accepts": 9, "handled": 9, "requests": 40,
                           "reading": 0, "writing": 3, "waiting": 2}}
    {"t": epoch, "replica": "r0", "error": "URLError: connection refused"}

Gauges and counters are summed over label sets (one replica may serve several model names),
except `kv_cache_usage_perc`, a fraction, which takes the maximum.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from locust_llm.servermetrics import Target, parse_stub_status, parse_vllm_metrics
from locust_llm.servermetrics import fetch as _fetch

__all__ = ["Scraper", "Target"]


class Scraper:
    """Background sampler; `start()`, then `stop()` (joins, flushes). Safe to stop twice."""

    def __init__(
        self,
        targets: list[Target],
        nginx_status_url: str | None,
        path: Path,
        interval: float = 1.0,
        timeout: float = 0.8,
    ) -> None:
        self.targets = targets
        self.nginx_status_url = nginx_status_url
        self.path = Path(path)
        self.interval = interval
        self.timeout = timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = 0

    def start(self) -> Scraper:
        self._thread = threading.Thread(target=self._loop, name="llm-scraper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5 * self.interval + self.timeout * (len(self.targets) + 1))
            self._thread = None

    def _loop(self) -> None:
        with self.path.open("a") as fh:
            next_t = time.monotonic()
            while not self._stop.is_set():
                self.scrape_once(fh)
                fh.flush()
                next_t += self.interval
                self._stop.wait(max(0.0, next_t - time.monotonic()))

    def scrape_once(self, fh: TextIO) -> None:
        """One sample per target plus one nginx sample, each stamped when it was read."""
        for tgt in self.targets:
            line: dict[str, Any] = {"replica": tgt.name}
            try:
                text = _fetch(tgt.url, self.timeout)
                line["t"] = time.time()
                if tgt.model:
                    line["model"] = tgt.model
                line.update(parse_vllm_metrics(text))
            except Exception as e:  # a dead replica is data, not a crash
                line["t"] = time.time()
                line["error"] = f"{type(e).__name__}: {e}"[:200]
            fh.write(json.dumps(line) + "\n")
            self.samples += 1
        if self.nginx_status_url:
            try:
                stub = parse_stub_status(_fetch(self.nginx_status_url, self.timeout))
                fh.write(json.dumps({"t": time.time(), "nginx": stub}) + "\n")
            except Exception as e:
                fh.write(
                    json.dumps({"t": time.time(), "nginx_error": f"{type(e).__name__}: {e}"[:200]})
                    + "\n"
                )
