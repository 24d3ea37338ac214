"""A run's per-second windows folded into what the summary reads, one window at a time.

The summary needs the windows merged into one (counts, sketches, samples) and vLLM's peak
fields, which count chunks and active requests per 1 s bucket from the first successful
start. Both are sums over windows, so they can be accumulated window by window: the
end-of-run summary folds every window once (:meth:`Fold.of`), and the live view
(:class:`LiveFold`) keeps the fold of the seconds that no longer change and, per poll, adds
only the seconds still open. Every figure comes from the same :class:`Fold` arithmetic, so the
live view at the end of a run and the end-of-run summary agree exactly (integer sums, exact
sketch sums and numpy percentiles over the same samples do not depend on the order of
folding).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from locust_llm.metrics.collector import Collector
from locust_llm.metrics.window import Window, chart_rows

__all__ = ["Fold", "LiveFold", "SEAL_S"]

# a second this far behind the newest one is folded for good; data arriving for it later
# (a worker reporting very late) makes the live view fold everything again
SEAL_S = 20
CHANGE_LOG = 4096  # views whose changed rows are remembered for pollers


def _add(acc: np.ndarray, keys: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``acc`` plus the counts of ``keys`` (non-negative bucket numbers), grown as needed."""
    if not len(keys):
        return acc
    add = np.bincount(keys, weights=weights).astype(np.int64)
    if len(add) > len(acc):
        acc = np.concatenate((acc, np.zeros(len(add) - len(acc), dtype=np.int64)))
    acc[: len(add)] += add
    return acc


def _sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) < len(b):
        a, b = b, a
    out = a.copy()
    out[: len(b)] += b
    return out


@dataclass
class _Buckets:
    """Counts per vLLM 1 s bucket (``int(t - origin)``) of some windows."""

    chunks: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ends: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    spans: int = 0
    # the same from the millisecond / 100 ms slots, for runs past the exact-event cap
    slot_chunks: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    slot_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    slot_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    slot_ends: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def plus(self, other: _Buckets) -> _Buckets:
        return _Buckets(
            **{k: _sum(getattr(self, k), getattr(other, k)) for k in _ARRAYS},
            spans=self.spans + other.spans,
        )


_ARRAYS = ("chunks", "starts", "ends", "slot_chunks", "slot_tokens", "slot_starts", "slot_ends")


def _slot_keys(slots: dict[int, int], scale: int, origin: float) -> tuple[np.ndarray, np.ndarray]:
    """(vLLM bucket, count) per slot: ``int(t - origin)`` with t the slot's start, -1 before."""
    if not slots:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    keys = np.fromiter(slots.keys(), dtype=np.float64, count=len(slots))
    counts = np.fromiter(slots.values(), dtype=np.int64, count=len(slots))
    rel = keys / scale - origin
    return np.where(rel >= 0, rel.astype(np.int64), -1), counts


class Fold:
    """Windows merged into ``total``, their events counted in 1 s buckets from ``origin``
    (the first successful start of everything that will be folded, as vLLM counts), and the
    highest per-second in-flight level."""

    def __init__(self, origin: float) -> None:
        self.origin = origin
        self.total = Window()
        self.b = _Buckets()
        self.exact = True  # every folded window kept its chunk times and spans
        self.inflight = 0
        self.goodput = False
        self.seconds: set[int] = set()
        self.rows: dict[int, dict[str, Any]] = {}  # second -> its chart row
        self.sketch_only: frozenset[str] = frozenset()  # metrics past their sample cap
        self.tokens: dict[int, int] = {}  # output tokens by the second they arrived in

    @classmethod
    def of(cls, collector: Collector, before: int | None = None) -> Fold:
        """Everything the collector holds: its seconds (with ``before``, only those before
        it; ``seconds`` lists what was folded), compacted minutes and their slots."""
        groups = (collector.windows.values(), collector.archive.values())
        f = cls(min((w.first_ok for g in groups for w in g), default=math.inf))
        f.goodput = collector.good is not None
        f.exact = collector.exact_events
        f.seconds = {s for s in collector.windows if before is None or s < before}
        for s in sorted(f.seconds):
            f.add(collector.windows[s], s)
        for w in collector.archive.values():
            f.add(w)
        f.add_slots(collector.archived)
        f.inflight = max([f.inflight, *(r["in_flight"] for r in collector.frozen_rows.values())])
        f.rows.update(collector.frozen_rows)
        return f

    def add(self, w: Window, sec: int | None = None) -> None:
        """Fold one window in: the window of second ``sec``, whose chart row and in-flight
        peak count, or (None) a compacted minute, whose seconds' frozen rows keep theirs."""
        self.total.merge(w, slots=False)
        if sec is not None:
            self.inflight = max(self.inflight, w.inflight_max)
            self.rows[sec] = w.row(sec)
        self._events(self.b, [w])
        self.add_slots({name: getattr(w, name) for name in _SLOT_SCALE})

    def add_slots(self, slots: dict[str, dict[int, int]]) -> None:
        self._slots(self.b, slots)
        tokens = self.tokens
        for d, n in (slots.get("tokens_arrived") or {}).items():
            tokens[d // 10] = tokens.get(d // 10, 0) + n

    def chart_rows(self, start: int | None = None) -> list[dict[str, Any]]:
        """The summary's ``intervals``: one chart row per wall-clock second (from ``start``
        on, with it)."""
        return chart_rows(self.rows, self.tokens, start)

    def _events(self, b: _Buckets, windows: Iterable[Window]) -> None:
        if math.isinf(self.origin):
            return  # nothing succeeded: nothing to count
        for w in windows:
            if w.chunk_times is None or w.spans is None:
                self.exact = False
            if not self.exact:
                continue
            k = (np.frombuffer(w.chunk_times, dtype=np.float64) - self.origin).astype(np.int64)
            b.chunks = _add(b.chunks, k[k >= 0])
            if len(w.spans):
                span = np.frombuffer(w.spans, dtype=np.float64).reshape(-1, 2) - self.origin
                b.starts = _add(b.starts, np.maximum(span[:, 0].astype(np.int64), 0))
                b.ends = _add(b.ends, np.maximum(span[:, 1].astype(np.int64), 0))
                b.spans += len(span)

    def _slots(self, b: _Buckets, slots: dict[str, dict[int, int]]) -> None:
        if math.isinf(self.origin):
            return
        for name, (attr, scale, clip) in _SLOT_SCALE.items():
            k, n = _slot_keys(slots.get(name) or {}, scale, self.origin)
            keep = k >= 0 if not clip else np.ones(len(k), dtype=bool)
            k = np.maximum(k, 0)
            setattr(b, attr, _add(getattr(b, attr), k[keep], n[keep].astype(np.float64)))

    def peaks(self, b: _Buckets | None = None, exact: bool | None = None) -> dict[str, Any]:
        """vLLM's ``max_output_tokens_per_s`` (token chunks, one each, per 1 s bucket) and
        ``max_concurrent_requests`` (successful requests active in a bucket, from the one
        they started in to the one their last chunk arrived in), exact from the event times
        while every window kept them, else from the slots; the token-based peak; and the
        client's in-flight peak."""
        b = self.b if b is None else b
        exact = self.exact if exact is None else exact
        if math.isinf(self.origin):
            chunks, conc, tokens = 0.0, 0, 0.0
        else:
            chunks = float((b.chunks if exact else b.slot_chunks).max(initial=0))
            tokens = float(b.slot_tokens.max(initial=0))
            starts, ends = (b.starts, b.ends) if exact and b.spans else (b.slot_starts, b.slot_ends)
            conc = 0
            if len(starts):
                # active in bucket k: started at or before k, and not ended before k
                n = max(len(starts), len(ends)) + 1
                cum_s = np.cumsum(np.pad(starts, (0, n - len(starts))))
                cum_e = np.cumsum(np.pad(ends, (0, n - len(ends))))
                conc = int((cum_s - np.concatenate(([0], cum_e[:-1]))).max())
        return {
            "max_output_tokens_per_s": chunks,
            "max_concurrent_requests": conc,
            "max_output_tokens_per_s_by_tokens": tokens,
            "max_inflight_requests": self.inflight,
        }


# slot name -> (bucket array, slots per second, whether slots before the origin count in the
# first bucket: a request that started before it is active there; a chunk before it is not
# counted at all, as vLLM drops negative buckets)
_SLOT_SCALE = {
    "chunks_ms": ("slot_chunks", 1000, False),
    "tokens_arrived": ("slot_tokens", 10, False),
    "starts_ms": ("slot_starts", 1000, True),
    "ends_ms": ("slot_ends", 1000, True),
}


def _stamp(w: Window) -> tuple[int, int, int]:
    """Changes whenever the window does: every request folded in adds a queue-time sample;
    starts and finishes move the in-flight levels."""
    return (w.sketches["queue_time"].count, w.inflight_max, w.inflight_last)


class LiveFold:
    """The live view's fold: seconds at least :data:`SEAL_S` behind the newest are folded
    once and kept; each poll merges only the seconds still open on top. Anything that would
    make the kept part wrong (data arriving for a folded second, a reset, an earlier first
    success moving every bucket, samples or events dropped past their caps) is detected
    and answered by folding everything again, as the end-of-run summary does.

    It also tells a poller which chart rows changed since the view it last saw
    (:meth:`changed_since`): the rows of the open seconds, of the seconds their requests'
    tokens arrived in, and of the seconds sealed since (data may have come for them after
    that view, or came late, for a second never open); everything, after a fold from
    scratch (a new ``epoch``). So the dashboard fetches the tail that moved, not the whole
    run's rows every poll.
    """

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.refolds = 0  # how often everything was folded again (the first poll included)
        self.epoch = 0  # bumped by every fold from scratch: older sequence numbers are void
        self.seq = 0  # the view last built
        self._changes: list[tuple[int, int]] = []  # (view seq, first second it changed)
        self.base: Fold | None = None
        self.sealed: dict[int, tuple[int, int, int]] = {}  # second still in windows -> stamp
        self.compacted: dict[int, int] = {}  # minute -> queue-time samples of folded seconds
        self._last: tuple[int, Fold] | None = None  # (collector version, its view)

    def _kept_part_is_stale(self, origin: float) -> bool:
        c = self.collector
        if self.base is None:
            return True
        if origin != self.base.origin or (self.base.exact and not c.exact_events):
            return True
        if c.sketch_only != self.base.sketch_only:  # rows kept from exact samples
            return True
        for sec in [s for s in self.sealed if s not in c.windows]:  # compacted since
            m = sec // 60
            self.compacted[m] = self.compacted.get(m, 0) + self.sealed.pop(sec)[0]
        if any(_stamp(c.windows[s]) != st for s, st in self.sealed.items()):
            return True
        return len(c.archive) != len(self.compacted) or any(
            w.sketches["queue_time"].count != self.compacted.get(m) for m, w in c.archive.items()
        )

    def view(self) -> Fold:
        """The fold of every window the collector holds now; the same object again while
        the collector has not changed (callers only read it)."""
        c = self.collector
        if self._last is not None and self._last[0] == c.version:
            return self._last[1]
        groups = (c.windows.values(), c.archive.values())
        origin = min((w.first_ok for g in groups for w in g), default=math.inf)
        if self._kept_part_is_stale(origin):
            self.refolds += 1
            self.epoch += 1
            self._changes.clear()
            self.base = Fold.of(c, before=max(c.windows, default=0) - SEAL_S + 1)
            self.base.sketch_only = frozenset(c.sketch_only)
            self.sealed = {s: _stamp(c.windows[s]) for s in self.base.seconds}
            self.compacted = {m: w.sketches["queue_time"].count for m, w in c.archive.items()}
        base = self.base
        assert base is not None
        newest = max(c.windows, default=0)
        open_secs = []
        first_changed = newest + 1
        for s in sorted(c.windows):
            if s in self.sealed:
                continue
            if s <= newest - SEAL_S:
                base.add(c.windows[s], s)
                self.sealed[s] = _stamp(c.windows[s])
                # it may have changed since the last view (or came in late, never open),
                # and so may the seconds its requests' tokens arrived in
                first_changed = min(first_changed, s)
                arrived = c.windows[s].tokens_arrived
                if arrived:
                    first_changed = min(first_changed, min(arrived) // 10)
            else:
                open_secs.append(s)
        out = Fold(origin)
        out.goodput = c.good is not None
        out.total.merge(base.total, slots=False)
        out.inflight = base.inflight
        out.exact = base.exact and c.exact_events
        opened = Fold(origin)
        opened.exact = out.exact
        for s in open_secs:
            opened.add(c.windows[s], s)
        out.total.merge(opened.total, slots=False)
        out.inflight = max(out.inflight, opened.inflight)
        out.exact = opened.exact
        out.b = base.b.plus(opened.b)
        out.rows = {**base.rows, **opened.rows}
        out.tokens = dict(base.tokens)
        for sec, n in opened.tokens.items():
            out.tokens[sec] = out.tokens.get(sec, 0) + n
        first_changed = min(first_changed, *open_secs, *opened.tokens, newest + 1)
        self.seq += 1
        self._changes.append((self.seq, first_changed))
        if len(self._changes) > CHANGE_LOG:
            del self._changes[: CHANGE_LOG // 2]  # a poller older than that gets every row
        self._last = (c.version, out)
        return out

    def changed_since(self, epoch: int, seq: int) -> int | None:
        """The first second whose chart row may differ from what the view ``seq`` of
        ``epoch`` showed (every later row may too); None when that view is unknown here
        (another epoch, or not built yet): the poller needs every row. Call after
        :meth:`view`."""
        if epoch != self.epoch or seq > self.seq or seq < 0:
            return None
        first = None
        for s, sec in reversed(self._changes):
            if s <= seq:
                break
            first = sec if first is None else min(first, sec)
        if self._changes and seq < self._changes[0][0] - 1:
            return None  # older than the log kept since the last fold from scratch
        return first if first is not None else max(self.collector.windows, default=0) + 1
