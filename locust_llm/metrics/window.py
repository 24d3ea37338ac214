"""One wall-clock second of LLM metrics: its sketches, counters and event slots.

A :class:`Window` is the unit a worker ships and the master merges, so it holds only what
merges exactly (sketches, sums, maxima, slot counts) and serializes to plain JSON.
"""

from __future__ import annotations

import math
from array import array
from typing import TYPE_CHECKING, Any

from locust_llm.metrics.distribution import Distribution

if TYPE_CHECKING:
    from locust_llm.metrics.record import LLMResult

__all__ = [
    "Window",
    "LATENCY_METRICS",
    "SKETCHES",
    "FULL_RESOLUTION_S",
    "EVENT_CAP",
    "SLOTS",
    "chart_rows",
]

# sketch name -> what it holds (all in milliseconds)
LATENCY_METRICS = (
    "ttft",
    "ttft_content",
    "tpot",
    "itl",
    "e2el",
    "queue_time",
    # time to the first non-reasoning output (text or tool call)
    "ttfot",
    # continuous usage stats only: each later chunk's gap spread over the tokens it carried
    "itl_token",
    # client health (kernel timestamps): how late the client parsed a token after the kernel
    # received it, and how long after t0 the request was handed to the kernel
    "read_lateness",
    "send_lateness",
    # requests the client cancelled (--llm-cancel-*): their TTFT, never in vLLM's fields
    "ttft_cancelled",
    # trace replay: sent - scheduled, every request sent (failures too)
    "schedule_lag",
)

# every sketch a window holds: the generation metrics above, and the latency of pooling
# requests (embeddings, rerank), which have no token stream (summary: its "pooling" section)
SKETCHES = (*LATENCY_METRICS, "pooling")

FULL_RESOLUTION_S = 120  # seconds kept with full sketches; older ones are compacted

_COUNTERS = (
    "completed",
    "failed",
    "aborted",
    "cancelled",  # hung up on by the client on purpose, and the output tokens they received
    "cancelled_tokens",
    "good",
    "input_tokens",
    "output_tokens",
    "inflight_max",
    "inflight_last",  # requests in flight after this second's last start or finish
    # requested max_tokens vs what was generated, for requests that asked for a length
    "requested_tokens",
    "requested_output",
    # kernel-timestamp health counts (tokens of successful requests)
    "stamped_tokens",
    "own_stamps",
    "shared_tokens",
    "first_shared",
    "end_shared",  # a last token read only with the stream's end (usage chunk, [DONE])
    "stamp_fallbacks",
    "itl_excluded",
    # error events after token chunks (such requests count as completed, as in vLLM)
    "midstream_errors",
    # usage details: prefix-cache hits over the prompt tokens of requests that reported them
    "cached_tokens",
    "cached_prompt_tokens",
    "reasoning_tokens",
    # image parts sent in completed requests, and their PNG bytes
    "images",
    "image_bytes",
    # completed requests by where their output token count came from
    "src_usage",
    "src_tokenizer",
    "src_chunks",
    # continuous usage stats: token-carrying chunks and their tokens
    "usage_chunks",
    "usage_chunk_tokens",
    # pooling requests (embeddings, rerank): finished, failed, items (inputs or documents)
    # and prompt tokens of the successful ones
    "pool_requests",
    "pool_failed",
    "pool_items",
    "pool_input_tokens",
)


# Chunk arrival times kept exactly per run (8 bytes each, plus 16 per successful request) for
# vLLM's peak fields; past this the millisecond slots below stand in (off by a chunk or a
# request at a bucket edge, at most)
EVENT_CAP = 1_000_000

# Event counts by time slot (an int of epoch × scale), summed exactly across processes:
# name -> (wire key, slots per second, what it counts)
SLOTS = {
    # output tokens (usage counts spread over the chunks) by arrival: charts, token-based peak
    "tokens_arrived": ("ta", 10, "output tokens by the 100 ms they arrived in"),
    # token chunks by arrival, one each as vLLM counts them for max_output_tokens_per_s
    "chunks_ms": ("ch", 1000, "token chunks by the millisecond they arrived in"),
    # successful requests by the millisecond they started and ended (vLLM's active span)
    "starts_ms": ("st", 1000, "successful requests by the millisecond they started"),
    "ends_ms": ("en", 1000, "successful requests by the millisecond of their last chunk"),
}


class Window:
    """Everything measured for requests that finished in one wall-clock second."""

    __slots__ = (
        *SLOTS,
        "chunk_times",
        "spans",
        "sketches",
        "first_start",
        "last_start",
        "first_ok",
        "last_end",
        "errors",
        "error_examples",
        *_COUNTERS,
    )

    def __init__(
        self, sketch_only: frozenset[str] | set[str] = frozenset(), exact_events: bool = True
    ) -> None:
        self.sketches = {m: Distribution(m not in sketch_only) for m in SKETCHES}
        self.first_start = math.inf
        self.last_start = -math.inf  # last dispatch: the achieved send rate of a replay
        self.first_ok = math.inf  # first start of a successful request (vLLM's bucket origin)
        self.last_end = -math.inf
        for name in SLOTS:
            setattr(self, name, {})
        # exact event times of successful requests while the run can afford them (vLLM's
        # peaks are 1 s buckets counted from a float origin: millisecond slots straddle the
        # bucket edges); None once the collector has dropped them
        self.chunk_times: array | None = None if exact_events is False else array("d")
        self.spans: array | None = None if exact_events is False else array("d")
        self.errors: dict[str, int] = {}  # by stable key (the message when it has none)
        self.error_examples: dict[str, str] = {}  # one message per key
        for c in _COUNTERS:
            setattr(self, c, 0)

    def note_send(self, t_start: float, queue_time: float, schedule_lag: float | None) -> None:
        """What every request sent adds, whatever its outcome: dispatch times and waits."""
        self.sketches["queue_time"].add(queue_time)  # zeros too: the share that did not wait
        if schedule_lag is not None:
            self.sketches["schedule_lag"].add(schedule_lag)
        self.first_start = min(self.first_start, t_start)
        self.last_start = max(self.last_start, t_start)

    def row(self, sec: int) -> dict[str, Any]:
        """This second's chart row (output tokens are filled in by the collector). Latency
        of a second in which no request finished is None: no data, not 0 ms."""
        t, i = self.sketches["ttft"], self.sketches["itl"]
        ttft = t.quantiles([0.5, 0.95]) if t.count else [None, None]
        itl = i.quantiles([0.5, 0.99]) if i.count else [None, None]
        return {
            "t": sec,
            "requests": self.completed,
            "failed": self.failed,
            "aborted": self.aborted,
            "cancelled": self.cancelled,
            "output_tokens": 0,
            "input_tokens": self.input_tokens,
            "in_flight": self.inflight_max,
            "in_flight_last": self.inflight_last,
            "ttft_p50_ms": ttft[0],
            "ttft_p95_ms": ttft[1],
            "itl_p50_ms": itl[0],
            "itl_p99_ms": itl[1],
        }

    def add_cancelled(self, r: LLMResult) -> None:
        """A request the client hung up on: counted with its tokens, its TTFT kept apart
        from vLLM's (which never cancels)."""
        self.cancelled += 1
        self.cancelled_tokens += r.output_tokens
        if r.ttft is not None:
            self.sketches["ttft_cancelled"].add(r.ttft)

    def add_token_weighted(self, r: LLMResult) -> None:
        """Token-weighted ITL from per-chunk token counts: the time before each chunk after
        the first token's, spread evenly over the tokens it carried (k samples of gap/k);
        gaps before chunks with no token carry over to the next one that has some."""
        ct = r.chunk_tokens or []
        self.usage_chunks += sum(1 for k in ct if k)
        self.usage_chunk_tokens += sum(ct)
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
            self.sketches["itl_token"].add_many(out)

    def merge(self, other: Window, slots: bool = True) -> None:
        for m, h in other.sketches.items():
            self.sketches[m].merge(h)
        self.first_start = min(self.first_start, other.first_start)
        self.last_start = max(self.last_start, other.last_start)
        self.first_ok = min(self.first_ok, other.first_ok)
        self.last_end = max(self.last_end, other.last_end)
        for name in SLOTS if slots else ():
            mine = getattr(self, name)
            for s, n in getattr(other, name).items():
                mine[s] = mine.get(s, 0) + n
        if slots:
            for name in ("chunk_times", "spans"):
                mine, theirs = getattr(self, name), getattr(other, name)
                if mine is not None:
                    if theirs is None:
                        setattr(self, name, None)  # part of the run is inexact: so is the whole
                    else:
                        mine.extend(theirs)
        for e, n in other.errors.items():
            self.errors[e] = self.errors.get(e, 0) + n
        for e, m in other.error_examples.items():
            self.error_examples.setdefault(e, m)
        for c in _COUNTERS:
            # in-flight maxima of different processes overlap in time: their sum bounds the peak
            setattr(self, c, getattr(self, c) + getattr(other, c))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {c: getattr(self, c) for c in _COUNTERS}
        d["sk"] = {m: h.to_dict() for m, h in self.sketches.items() if h.count}
        d["fs"] = self.first_start if self.first_start != math.inf else None
        d["le"] = self.last_end if self.last_end != -math.inf else None
        d["ls"] = self.last_start if self.last_start != -math.inf else None
        d["fo"] = self.first_ok if self.first_ok != math.inf else None
        for name, (key, _, _) in SLOTS.items():
            d[key] = [[s, n] for s, n in getattr(self, name).items()]
        d["ct"] = self.chunk_times.tolist() if self.chunk_times is not None else None
        d["sp"] = self.spans.tolist() if self.spans is not None else None
        d["er"] = self.errors
        d["ex"] = self.error_examples
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Window:
        w = cls()
        for c in _COUNTERS:
            setattr(w, c, d.get(c, 0))
        for m, h in d.get("sk", {}).items():
            w.sketches[m] = Distribution.from_dict(h)
        w.first_start = d["fs"] if d.get("fs") is not None else math.inf
        w.last_end = d["le"] if d.get("le") is not None else -math.inf
        w.last_start = d["ls"] if d.get("ls") is not None else -math.inf
        w.first_ok = d["fo"] if d.get("fo") is not None else math.inf
        for name, (key, _, _) in SLOTS.items():
            setattr(w, name, {int(s): n for s, n in d.get(key, [])})
        for name, key in (("chunk_times", "ct"), ("spans", "sp")):
            v = d.get(key)
            setattr(w, name, array("d", v) if v is not None else None)
        w.errors = dict(d.get("er", {}))
        w.error_examples = dict(d.get("ex", {}))
        return w


def chart_rows(
    rows: dict[int, dict[str, Any]], tokens: dict[int, int], start: int | None = None
) -> list[dict[str, Any]]:
    """One chart row per wall-clock second from the rows of the seconds that have a window
    (``Window.row``) and the output tokens that arrived in each second; with ``start``, only
    the rows from that second on (the same rows the full list has there).

    ``partial`` marks the first and the last second: the run covered only part of them,
    so their counts are not a rate and charts leave them out. A second with no start or
    finish had the level the previous second ended with in flight all along.
    """
    secs = rows.keys() | tokens.keys()
    if not secs:
        return []
    out = []
    lo, hi = min(secs), max(secs)
    first = lo if start is None else max(lo, start)
    level = 0
    for s in range(first - 1, lo - 1, -1):  # the level the second before `first` ended with
        have = rows.get(s)
        if have is not None and "in_flight_last" in have:
            level = have["in_flight_last"]
            break
    for s in range(first, hi + 1):
        have = rows.get(s)
        if have is not None:
            row = dict(have)
            level = have.get("in_flight_last", level)
        else:
            row = Window().row(s)
            row["in_flight"] = level
        row["output_tokens"] = tokens.get(s, 0)
        row["partial"] = s in (lo, hi)
        out.append(row)
    return out
