"""Per-second windows of LLM metrics, mergeable across Locust processes and workers.

Each finished request is folded into the window of the wall-clock second it *started* in
(latency sketches, request and token counts); output tokens are also spread over the seconds they
*arrived* in, which gives vLLM's peak output tokens/s. Windows are small (a few sketches and
counters), so a worker ships only the windows that changed since its last report, and the
master merges them exactly; the summary is therefore the same in local, ``--processes`` and
master/worker runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.sketch import LogHistogram

__all__ = ["Collector", "Window", "LATENCY_METRICS"]

# sketch name -> what it holds (all in milliseconds)
LATENCY_METRICS = ("ttft", "ttft_content", "tpot", "itl", "e2el", "queue_time")

_COUNTERS = (
    "completed",
    "failed",
    "aborted",
    "good",
    "input_tokens",
    "output_tokens",
    "inflight_max",
)


class Window:
    """Everything measured for requests that started in one wall-clock second."""

    __slots__ = ("sketches", "first_start", "last_end", "tokens_arrived", "errors", *_COUNTERS)

    def __init__(self) -> None:
        self.sketches = {m: LogHistogram() for m in LATENCY_METRICS}
        self.first_start = math.inf
        self.last_end = -math.inf
        self.tokens_arrived: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        for c in _COUNTERS:
            setattr(self, c, 0)

    def merge(self, other: Window) -> None:
        for m, h in other.sketches.items():
            self.sketches[m].merge(h)
        self.first_start = min(self.first_start, other.first_start)
        self.last_end = max(self.last_end, other.last_end)
        for s, n in other.tokens_arrived.items():
            self.tokens_arrived[s] = self.tokens_arrived.get(s, 0) + n
        for e, n in other.errors.items():
            self.errors[e] = self.errors.get(e, 0) + n
        for c in _COUNTERS:
            # in-flight maxima of different processes overlap in time: their sum bounds the peak
            setattr(self, c, getattr(self, c) + getattr(other, c))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {c: getattr(self, c) for c in _COUNTERS}
        d["sk"] = {m: h.to_dict() for m, h in self.sketches.items() if h.count}
        d["fs"] = self.first_start if self.first_start != math.inf else None
        d["le"] = self.last_end if self.last_end != -math.inf else None
        d["ta"] = [[s, n] for s, n in self.tokens_arrived.items()]
        d["er"] = self.errors
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Window:
        w = cls()
        for c in _COUNTERS:
            setattr(w, c, d.get(c, 0))
        for m, h in d.get("sk", {}).items():
            w.sketches[m] = LogHistogram.from_dict(h)
        w.first_start = d["fs"] if d.get("fs") is not None else math.inf
        w.last_end = d["le"] if d.get("le") is not None else -math.inf
        w.tokens_arrived = {int(s): n for s, n in d.get("ta", [])}
        w.errors = dict(d.get("er", {}))
        return w


class Collector:
    """Folds finished requests into windows; ships and merges them between processes.

    ``good`` decides whether a request meets the goodput SLOs (vLLM's ``request_goodput``);
    ``max_errors`` bounds the number of distinct error messages kept per window.
    """

    def __init__(self, good: Callable[[LLMResult], bool] | None = None) -> None:
        self.windows: dict[int, Window] = {}
        self._dirty: set[int] = set()
        self.good = good
        self.inflight = 0

    def _window(self, sec: int) -> Window:
        w = self.windows.get(sec)
        if w is None:
            w = self.windows[sec] = Window()
        self._dirty.add(sec)
        return w

    def request_started(self, t_epoch: float) -> None:
        """Called at dispatch: tracks in-flight requests for the concurrency series."""
        self.inflight += 1
        w = self._window(int(t_epoch))
        if self.inflight > w.inflight_max:
            w.inflight_max = self.inflight

    def request_finished(self) -> None:
        self.inflight = max(self.inflight - 1, 0)

    def add(self, r: LLMResult) -> None:
        """Fold one finished request in. O(tokens of that request), i.e. O(1) per token."""
        if r.warmup:
            return
        w = self._window(int(r.t_start))
        sk = w.sketches
        if r.queue_time:
            sk["queue_time"].add(r.queue_time)
        if r.t_start < w.first_start:
            w.first_start = r.t_start
        end = r.t_start + ((r.e2e if r.e2e is not None else r.stream_closed) or 0.0) / 1000.0
        if end > w.last_end:
            w.last_end = end
        if r.aborted:
            w.aborted += 1
            return
        if r.error is not None:
            w.failed += 1
            key = r.error if len(w.errors) < 100 or r.error in w.errors else "other errors"
            w.errors[key] = w.errors.get(key, 0) + 1
            return
        w.completed += 1
        w.input_tokens += r.prompt_tokens or 0
        w.output_tokens += r.output_tokens
        if r.ttft is not None:
            sk["ttft"].add(r.ttft)
        if r.ttft_content is not None:
            sk["ttft_content"].add(r.ttft_content)
        if r.e2e is not None:
            sk["e2el"].add(r.e2e)
        tpot = r.tpot
        if tpot is not None:
            sk["tpot"].add(tpot)
        if r.itl:
            sk["itl"].add_many(r.itl)
        if self.good is not None and self.good(r):
            w.good += 1
        self._spread_tokens(w, r)

    @staticmethod
    def _spread_tokens(w: Window, r: LLMResult) -> None:
        """Attribute output tokens to the seconds their chunks arrived in (for peak tok/s).

        When usage counts differ from chunks, chunk i gets ``⌊(i+1)·n/c⌋ − ⌊i·n/c⌋`` tokens:
        whole numbers, so per-second sums are exact and do not depend on the order in which
        requests were added or windows merged (fractional shares made the summary differ in
        the last bits between a local and a master/worker run).
        """
        chunks = r.token_chunks
        if r.ttft is None or not chunks:
            return
        n = r.output_tokens
        t = r.t_start + r.ttft / 1000.0
        ta = w.tokens_arrived
        sec = int(t)
        if n == chunks:  # the usual case: one token per chunk
            ta[sec] = ta.get(sec, 0) + 1
            for gap in r.itl:
                t += gap / 1000.0
                sec = int(t)
                ta[sec] = ta.get(sec, 0) + 1
            return
        done = n // chunks
        ta[sec] = ta.get(sec, 0) + done
        for i, gap in enumerate(r.itl, 2):
            t += gap / 1000.0
            sec = int(t)
            upto = i * n // chunks
            ta[sec] = ta.get(sec, 0) + upto - done
            done = upto

    # -- distribution -----------------------------------------------------------------------
    def take_delta(self) -> dict[str, Any]:
        """Windows changed since the last call, serialised, and forgotten locally (workers)."""
        out = {
            str(s): self.windows.pop(s).to_dict() for s in sorted(self._dirty) if s in self.windows
        }
        self._dirty.clear()
        return out

    def merge_delta(self, data: dict[str, Any]) -> None:
        for s, wd in data.items():
            self._window(int(s)).merge(Window.from_dict(wd))

    def reset(self) -> None:
        self.windows.clear()
        self._dirty.clear()

    def merged(self, start: float | None = None, end: float | None = None) -> Window:
        """All windows whose second lies in [start, end) folded into one."""
        total = Window()
        for s, w in self.windows.items():
            if (start is None or s >= start) and (end is None or s < end):
                total.merge(w)
        return total
