"""Per-second windows of LLM metrics, mergeable across Locust processes and workers.

Each finished request is folded into the window of the wall-clock second it *finished* in
(latency samples, request and token counts), so a chart of completions per second shows when
requests completed; output tokens are also spread over the seconds they *arrived* in (tokens
per second, vLLM's peak output tokens/s), and the in-flight count is the true maximum reached
in each second (every start and every finish is seen). Windows are small (a few sketches and
counters), so a worker ships only the windows that changed since its last report, and the
master merges them exactly; the summary is therefore the same in local, ``--processes`` and
master/worker runs.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable
from typing import Any

from locust_llm.metrics.distribution import EXACT_CAP
from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.spread import spread_tokens

__all__ = ["Collector", "Window", "LATENCY_METRICS"]

from locust_llm.metrics.window import (  # noqa: F401  (re-exported)
    _COUNTERS,
    EVENT_CAP,
    FULL_RESOLUTION_S,
    LATENCY_METRICS,
    SLOTS,
    Window,
)


class Collector:
    """Folds finished requests into windows; ships and merges them between processes.

    ``good`` decides whether a request meets the goodput SLOs (vLLM's ``request_goodput``);
    ``max_errors`` bounds the number of distinct error messages kept per window.
    """

    def __init__(
        self,
        good: Callable[[LLMResult], bool] | None = None,
        full_resolution_s: int = FULL_RESOLUTION_S,
        exact_cap: int = EXACT_CAP,
        event_cap: int = EVENT_CAP,
    ) -> None:
        self.windows: dict[int, Window] = {}
        # Percentiles are numpy's over the samples until a metric has more than exact_cap of
        # them in this run (this process's share, on a worker); then that metric's samples are
        # dropped everywhere and it is sketch-only, so memory and report size stay bounded.
        self.exact_cap = exact_cap
        self.sample_counts: dict[str, int] = dict.fromkeys(LATENCY_METRICS, 0)
        self.sketch_only: set[str] = set()
        # chunk arrival times and request spans kept exactly up to event_cap chunks
        self.event_cap = event_cap
        self.event_count = 0
        self.exact_events = True
        self._dirty: set[int] = set()
        self.good = good
        self.inflight = 0
        # Long runs: seconds older than full_resolution_s are compacted so memory stays flat
        # (a soak of hours must not grow): their chart row is frozen, their sketches are merged
        # into one window per minute, their token arrivals into a per-second counter.
        self.full_resolution_s = full_resolution_s
        self.archive: dict[int, Window] = {}  # minute -> compacted windows
        self.frozen_rows: dict[int, dict[str, Any]] = {}  # second -> its chart row
        self.archived: dict[str, dict[int, int]] = {name: {} for name in SLOTS}
        # worker: per-second (peak, last level) already shipped
        self._shipped_inflight: dict[int, tuple[int, int]] = {}
        self._newest = -1
        self._frozen_before = -1
        self.shipping = False  # workers ship windows away instead of compacting them
        # bumped by every change: views computed from the collector are valid while it holds
        self.version = 0

    def _window(self, sec: int) -> Window:
        w = self.windows.get(sec)
        if w is None:
            if sec < self._frozen_before:
                # late data for a compacted second (a request longer than the horizon):
                # it counts in the totals, not in that second's frozen chart row
                m = sec // 60
                w = self.archive.get(m)
                if w is None:
                    w = self.archive[m] = Window(self.sketch_only, self.exact_events)
                return w
            w = self.windows[sec] = Window(self.sketch_only, self.exact_events)
            if sec > self._newest:
                self._newest = sec
                if not self.shipping and sec - self.full_resolution_s > self._frozen_before:
                    self._compact(sec - self.full_resolution_s)
        self._dirty.add(sec)
        return w

    def _compact(self, cutoff: int) -> None:
        for sec in [s for s in self.windows if s < cutoff]:
            w = self.windows.pop(sec)
            self._dirty.discard(sec)
            self.frozen_rows[sec] = w.row(sec)
            for name in SLOTS:
                dst = self.archived[name]
                for a, n in getattr(w, name).items():
                    dst[a] = dst.get(a, 0) + n
                setattr(w, name, {})
            m = sec // 60
            if m in self.archive:
                self.archive[m].merge(w)
            else:
                self.archive[m] = w
        self._frozen_before = cutoff

    def request_started(self, t_epoch: float) -> None:
        """Called at dispatch: tracks in-flight requests for the concurrency series."""
        self.version += 1
        self.inflight += 1
        w = self._window(int(t_epoch))
        if self.inflight > w.inflight_max:
            w.inflight_max = self.inflight
        w.inflight_last = self.inflight

    def request_finished(self, t_epoch: float | None = None) -> None:
        """Called when a request ends: the level it held counts in this second's maximum."""
        self.version += 1
        w = self._window(int(time.time() if t_epoch is None else t_epoch))
        if self.inflight > w.inflight_max:
            w.inflight_max = self.inflight
        self.inflight = max(self.inflight - 1, 0)
        w.inflight_last = self.inflight

    def _count_samples(self, metric: str, n: int) -> None:
        total = self.sample_counts[metric] = self.sample_counts[metric] + n
        if total > self.exact_cap and metric not in self.sketch_only:
            self.sketch_only.add(metric)
            for group in (self.windows, self.archive):
                for w in group.values():
                    w.sketches[metric].drop_samples()

    def _count_events(self, n: int) -> None:
        self.event_count += n
        if self.event_count > self.event_cap and self.exact_events:
            self.exact_events = False
            for group in (self.windows, self.archive):
                for w in group.values():
                    w.chunk_times = w.spans = None

    def add(self, r: LLMResult) -> None:
        """Fold one finished request in. O(tokens of that request), i.e. O(1) per token."""
        if r.warmup:
            return
        self.version += 1
        took = (r.e2e if r.e2e is not None else r.stream_closed) or 0.0
        w = self._window(int(r.t_start + took / 1000.0))
        before = [d.count for d in w.sketches.values()]
        events = len(w.chunk_times) if w.chunk_times is not None else 0
        self._add(w, r)
        for (m, d), n in zip(w.sketches.items(), before, strict=True):
            if d.count != n:
                self._count_samples(m, d.count - n)
        if w.chunk_times is not None:
            self._count_events(len(w.chunk_times) - events)

    def _add(self, w: Window, r: LLMResult) -> None:
        sk = w.sketches
        sk["queue_time"].add(r.queue_time)  # zeros too: the share that did not wait matters
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
            key = r.error_key or r.error
            if len(w.errors) >= 100 and key not in w.errors:
                key = "other errors"
            w.errors[key] = w.errors.get(key, 0) + 1
            if key not in w.error_examples:
                w.error_examples[key] = r.error
            return
        w.completed += 1
        w.input_tokens += r.prompt_tokens or 0
        w.output_tokens += r.output_tokens
        if r.midstream_error is not None:
            w.midstream_errors += 1
        src = "src_" + r.output_tokens_source
        setattr(w, src, getattr(w, src) + 1)
        if r.cached_tokens is not None:
            w.cached_tokens += r.cached_tokens
            w.cached_prompt_tokens += r.prompt_tokens or 0
        if r.reasoning_tokens is not None:
            w.reasoning_tokens += r.reasoning_tokens
        if r.ttfot is not None:
            sk["ttfot"].add(r.ttfot)
        if r.chunk_tokens:
            self._token_weighted(w, r)
        if r.max_tokens:
            w.requested_tokens += r.max_tokens
            w.requested_output += r.output_tokens
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
            exact = r.exact_itl()
            sk["itl"].add_many(exact)
            w.itl_excluded += len(r.itl) - len(exact)
        if r.timestamps == "kernel":
            w.stamped_tokens += r.token_chunks
            w.own_stamps += r.own_stamps or 0
            w.shared_tokens += r.shared_reads or 0
            w.first_shared += 1 if r.shared and r.shared[0] == 0 else 0
            w.stamp_fallbacks += r.stamp_fallbacks or 0
            if r.read_lateness:
                sk["read_lateness"].add_many(r.read_lateness)
            if r.send_lateness is not None:
                sk["send_lateness"].add(r.send_lateness)
        if self.good is not None and self.good(r):
            w.good += 1
        if r.t_start < w.first_ok:
            w.first_ok = r.t_start
        if r.e2e is not None:  # vLLM: a successful request is active from start to last chunk
            m0 = int(r.t_start * 1000)
            m1 = int((r.t_start + r.e2e / 1000.0) * 1000)
            w.starts_ms[m0] = w.starts_ms.get(m0, 0) + 1
            w.ends_ms[m1] = w.ends_ms.get(m1, 0) + 1
            if w.spans is not None:
                w.spans.append(r.t_start)
                w.spans.append(r.t_start + r.e2e / 1000.0)
        spread_tokens(w, r)

    @staticmethod
    def _token_weighted(w: Window, r: LLMResult) -> None:
        """Token-weighted ITL from per-chunk token counts: the time before each chunk after
        the first token's, spread evenly over the tokens it carried (k samples of gap/k);
        gaps before chunks with no token carry over to the next one that has some."""
        ct = r.chunk_tokens or []
        w.usage_chunks += sum(1 for k in ct if k)
        w.usage_chunk_tokens += sum(ct)
        if len(ct) != len(r.itl) + 1:
            return
        out: list[float] = []
        seen_token = ct[0] > 0
        pending = 0.0
        for gap, k in zip(r.itl, ct[1:], strict=True):
            if not seen_token:
                seen_token = k > 0
                continue
            pending += gap
            if k:
                out.extend([pending / k] * k)
                pending = 0.0
        if out:
            w.sketches["itl_token"].add_many(out)

    # -- distribution -----------------------------------------------------------------------
    def _unarchive(self) -> None:
        """Put compacted minutes back as windows to ship: a collector compacts until it is told
        it ships (its first report), and what it compacted must reach the master all the same
        (the per-second chart rows of those seconds are lost; totals and samples are not)."""
        for m, aw in self.archive.items():
            sec = m * 60
            w = self.windows.get(sec)
            if w is None:
                w = self.windows[sec] = Window(self.sketch_only, self.exact_events)
            w.merge(aw)
            self._dirty.add(sec)
        if self.windows:
            w = self.windows[min(self.windows)]
            for name, slots in self.archived.items():
                mine = getattr(w, name)
                for a, n in slots.items():
                    mine[a] = mine.get(a, 0) + n
                slots.clear()
        self.archive.clear()
        self.frozen_rows.clear()
        self._frozen_before = -1

    def take_delta(self) -> dict[str, Any]:
        """Windows changed since the last call, serialised, and forgotten locally (workers)."""
        self.shipping = True
        if self.archive:
            self._unarchive()
        out = {}
        shipped = self._shipped_inflight
        for sec in sorted(self._dirty):
            w = self.windows.pop(sec, None)
            if w is None:
                continue
            # a second can be shipped twice (a report mid-second); the master adds windows, so
            # send only how much this second's in-flight peak rose since the last report
            prev, prev_last = shipped.get(sec, (0, 0))
            shipped[sec] = (max(prev, w.inflight_max), w.inflight_last)
            w.inflight_max = max(w.inflight_max - prev, 0)
            w.inflight_last -= prev_last  # the master adds: ship the change
            out[str(sec)] = w.to_dict()
        self._dirty.clear()
        if len(shipped) > 64:
            for sec in sorted(shipped)[:-16]:
                del shipped[sec]
        return out

    def merge_delta(self, data: dict[str, Any]) -> None:
        self.version += 1
        for s, wd in data.items():
            self._window(int(s)).merge(Window.from_dict(wd))
            for m, h in wd.get("sk", {}).items():
                self._count_samples(m, h["n"])
            self._count_events(len(wd.get("ct") or ()))

    def reset(self) -> None:
        self.version += 1
        self.windows.clear()
        self._dirty.clear()
        self.archive.clear()
        self.frozen_rows.clear()
        for d in self.archived.values():
            d.clear()
        self._shipped_inflight.clear()
        self.sample_counts = dict.fromkeys(LATENCY_METRICS, 0)
        self.sketch_only.clear()
        self.event_count = 0
        self.exact_events = True
        self._newest = self._frozen_before = -1

    def merged(self, start: float | None = None, end: float | None = None) -> Window:
        """All windows whose second lies in [start, end) folded into one.

        Event slots are left out (``slots()`` has them for the whole run). Compacted minutes
        are included whole when their first second is in the range, so a
        range that cuts through a compacted minute is approximate at that edge.
        """
        total = Window()
        for s, w in self.windows.items():
            if (start is None or s >= start) and (end is None or s < end):
                total.merge(w, slots=False)
        for m, w in self.archive.items():
            s = m * 60
            if (start is None or s >= start) and (end is None or s < end):
                total.merge(w, slots=False)
        return total

    def slots(self, name: str) -> dict[int, int]:
        """One of :data:`SLOTS` over the whole run (live, shipped and compacted seconds)."""
        out = dict(self.archived[name])
        for group in (self.windows, self.archive):
            for w in group.values():
                for d, n in getattr(w, name).items():
                    out[d] = out.get(d, 0) + n
        return out

    def events(self) -> tuple[array, array] | None:
        """(chunk arrival times, flattened (start, end) spans) of every successful request
        over the whole run, or None once the run had more than ``event_cap`` chunks."""
        if not self.exact_events:
            return None
        times, spans = array("d"), array("d")
        for group in (self.windows, self.archive):
            for w in group.values():
                if w.chunk_times is None or w.spans is None:
                    return None
                times.extend(w.chunk_times)
                spans.extend(w.spans)
        return times, spans

    def tokens_by_decisecond(self) -> dict[int, int]:
        """Output tokens by the 100 ms slot (``int(epoch * 10)``) they arrived in."""
        return self.slots("tokens_arrived")

    def tokens_per_second(self) -> dict[int, int]:
        """Output tokens by the wall-clock second they arrived in, over the whole run."""
        out: dict[int, int] = {}
        for d, n in self.tokens_by_decisecond().items():
            out[d // 10] = out.get(d // 10, 0) + n
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One chart row per wall-clock second (frozen rows for compacted seconds).

        ``partial`` marks the first and the last second: the run covered only part of them,
        so their counts are not a rate and charts leave them out. A second with no start or
        finish had the level the previous second ended with in flight all along.
        """
        tokens = self.tokens_per_second()
        secs = set(self.windows) | set(self.frozen_rows) | set(tokens)
        if not secs:
            return []
        rows = []
        lo, hi = min(secs), max(secs)
        level = 0
        for s in range(lo, hi + 1):
            frozen = self.frozen_rows.get(s)
            w = self.windows.get(s)
            if frozen is not None:
                row = dict(frozen)
            elif w is not None:
                row = w.row(s)
            else:
                row = Window().row(s)
                row["in_flight"] = level
            if w is not None:
                level = w.inflight_last
            elif frozen is not None:
                level = frozen.get("in_flight_last", level)
            row["output_tokens"] = tokens.get(s, 0)
            row["partial"] = s in (lo, hi)
            rows.append(row)
        return rows
