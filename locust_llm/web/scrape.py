"""Server-side metrics for the LLM tab: vLLM ``/metrics`` per replica and nginx ``stub_status``.

One background greenlet on the master (or local runner) polls every target every 2 s, in
parallel, with short timeouts, and keeps a bounded history (deque) per target, so a stuck
replica never slows the web request path and memory stays flat on long runs. The web routes
only read the latest samples. Targets are re-resolved each round: the backend stack may come
up after the web UI does.

Parsing uses ``prometheus_client``'s parser (the exposition format has escaping and
label rules a regex would get wrong), shared with the scenario runner in `locust_llm.servermetrics`.
nginx's per-upstream request counts come from its JSON access log (``$upstream_addr``), read
incrementally from the last offset.

This runs inside the process generating load, so nothing large is parsed in a greenlet: the
Prometheus text and each access-log chunk (up to 8 MiB) are read and parsed in gevent's thread
pool, which releases the hub between bytecode slices instead of holding it for the whole parse.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from locust_llm import servermetrics
from locust_llm.servermetrics import PrefixCacheTotals, Target

__all__ = ["Target", "ServerScraper", "parse_vllm_metrics", "parse_stub_status"]

log = logging.getLogger("locust_llm.web")

INTERVAL_S = 2.0
HISTORY = 300  # samples per target: 10 minutes at 2 s
TIMEOUT_S = 1.5

# the LLM tab's short names for the servermetrics fields it shows
_SHORT = {
    "num_requests_running": "running",
    "num_requests_waiting": "waiting",
    "kv_cache_usage_perc": "kv_cache_usage",
    "generation_tokens_total": "generation_tokens",
    "prompt_tokens_total": "prompt_tokens",
    "num_preemptions_total": "preemptions",
    # kept under vLLM's names: servermetrics.PrefixCacheTotals reads them
    "prefix_cache_queries_total": "prefix_cache_queries_total",
    "prefix_cache_hits_total": "prefix_cache_hits_total",
}


@dataclass
class TargetState:
    target: Target
    history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    error: str | None = None
    last_ok: float | None = None
    # prefix-cache counters grown since the test started (or stats were reset)
    prefix: PrefixCacheTotals = field(default_factory=PrefixCacheTotals)


def parse_vllm_metrics(text: str) -> dict[str, float]:
    """Running/waiting/KV usage and token counters under the tab's short names."""
    return {_SHORT[k]: v for k, v in servermetrics.parse_vllm_metrics(text).items() if k in _SHORT}


def parse_stub_status(text: str) -> dict[str, float]:
    """nginx ``stub_status``: active, accepts, handled, requests, reading, writing, waiting."""
    return {k: float(v) for k, v in servermetrics.parse_stub_status(text).items()}


def _fetch(url: str) -> str:
    return servermetrics.fetch(url, TIMEOUT_S)


def _off_hub(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn`` in gevent's thread pool (the calling greenlet waits, the others run)."""
    import gevent

    return gevent.get_hub().threadpool.apply(fn, args)


def _values(kind: str, text: str) -> dict[str, float]:
    return parse_vllm_metrics(text) if kind == "vllm" else parse_stub_status(text)


def _read_log_chunk(path: Path, pos: int) -> tuple[int, dict[str, int]]:
    """Whole lines from ``pos`` (at most 8 MiB): bytes consumed and requests per upstream."""
    with open(path, "rb") as f:
        f.seek(pos)
        data = f.read(8 << 20)
    end = data.rfind(b"\n") + 1  # only whole lines; the rest is read next round
    entries = servermetrics.parse_access_log(data[:end])
    out = dict(servermetrics.upstream_counts(entries))
    without = len(entries) - sum(out.values())
    if without > 0:
        out["-"] = without  # nginx answered itself (no upstream)
    return end, out


class ServerScraper:
    """Polls ``targets()`` every ``interval`` seconds in a greenlet; see the module docstring."""

    def __init__(
        self,
        targets: Callable[[], list[Target]],
        access_log: Callable[[], Path | None] = lambda: None,
        interval: float = INTERVAL_S,
        fetch: Callable[[str], str] = _fetch,
    ) -> None:
        self._targets = targets
        self._access_log = access_log
        self.interval = interval
        self._fetch = fetch
        self.states: dict[str, TargetState] = {}
        self.upstream_requests: dict[str, int] = {}
        self._log_pos = 0
        self._log_path: Path | None = None
        self._greenlet: Any = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        import gevent

        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _loop(self) -> None:
        import gevent

        while True:
            try:
                self.poll_once()
            except Exception:  # never let a parse surprise end the loop
                log.exception("server metrics poll failed")
            gevent.sleep(self.interval)

    # -- one round --------------------------------------------------------------------------
    def poll_once(self) -> None:
        import gevent

        targets = self._targets()
        jobs = [gevent.spawn(self._poll_target, t) for t in targets]
        gevent.joinall(jobs, timeout=TIMEOUT_S * 2)
        for j in jobs:
            j.kill(block=False)
        self._read_access_log()

    def _poll_target(self, t: Target) -> None:
        st = self.states.get(t.url)
        if st is None:
            st = self.states[t.url] = TargetState(t)
        now = time.time()
        try:
            text = self._fetch(t.url)
            values = _off_hub(_values, t.kind, text)
        except Exception as e:
            st.error = f"{type(e).__name__}: {e}"[:300]
            return
        st.error = None
        st.last_ok = now
        st.history.append((now, values))
        st.prefix.add(values)

    def _read_access_log(self) -> None:
        path = self._access_log()
        if path is None:
            return
        if path != self._log_path:
            self._log_path, self._log_pos = path, 0
        with contextlib.suppress(OSError):
            end, counts = _off_hub(_read_log_chunk, path, self._log_pos)
            self._log_pos += end
            for up, n in counts.items():
                self.upstream_requests[up] = self.upstream_requests.get(up, 0) + n

    def reset_counters(self) -> None:
        """A test starts or stats are reset: counter growth is counted from the next sample."""
        for st in self.states.values():
            st.prefix = PrefixCacheTotals()

    # -- what the routes read ---------------------------------------------------------------
    def snapshot(self, history: bool = False) -> dict[str, Any]:
        """Latest value per target (and optionally the bounded history), JSON-ready."""
        targets = []
        for st in self.states.values():
            last = st.history[-1] if st.history else None
            row: dict[str, Any] = {
                "name": st.target.name,
                "url": st.target.url,
                "kind": st.target.kind,
                "ok": st.error is None and last is not None,
                "error": st.error,
                "t": last[0] if last else None,
                "values": last[1] if last else {},
                "prefix_cache": st.prefix.as_dict(),
            }
            if history:
                row["history"] = [{"t": t, **v} for t, v in st.history]
            targets.append(row)
        return {"targets": targets, "upstream_requests": dict(self.upstream_requests)}
