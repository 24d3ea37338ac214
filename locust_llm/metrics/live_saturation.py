"""Over-saturation noticed while the run goes, not only in the end-of-run summary.

A sweep or a long soak past capacity wastes its remaining minutes measuring a queue that
only grows; the operator watching the LLM tab, and a stepped shape deciding whether to
escalate, need the verdict as soon as the test of `locust_llm.metrics.saturation` holds.

Cost: once a second, the detector runs on the last ``window + persist + 2`` complete seconds
only (read straight from the collector's per-second windows, never the whole run), so a check
is O(window) whatever the run's length. It runs in its own greenlet on the process that holds
the merged metrics (local runner or master), never in the users' request path.
The first verdict that fires is kept (and logged once); the end-of-run verdict in the
summary is still computed over every measured second.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from locust_llm.metrics.saturation import PERSIST, WINDOW_S, Verdict, detect

log = logging.getLogger("locust_llm")

TAIL_S = int(WINDOW_S) + PERSIST + 2  # seconds of rows a check needs to see `persist` windows


def _row_key(w: Any) -> tuple[int, ...]:
    """What a window's chart row is made of, by count: equal keys, equal rows."""
    sk = w.sketches
    return (w.completed, w.failed, w.aborted, w.cancelled, w.inflight_max, w.inflight_last,
            sk["ttft"].count, sk["itl"].count)  # fmt: skip


def tail_rows(
    collector: Any, lo: int, hi: int, cache: dict[int, tuple[Any, dict[str, Any]]] | None = None
) -> list[dict[str, Any]]:
    """Chart rows of the complete seconds ``lo <= t < hi`` with the fields the detector reads.

    Reads the collector's per-second windows directly (``Collector.rows`` walks the whole run).
    A second without any start or finish keeps the in-flight level the previous one ended with.
    ``cache`` keeps each second's row with its window's counts, so a check once a second
    computes percentiles only for the seconds that changed (a row's exact percentiles cost
    milliseconds at 10k+ tokens/s, and the check runs inside the load generator's loop).
    """
    level = 0
    for s in range(lo - 1, lo - 1 - TAIL_S, -1):  # the level carried into `lo`
        w = collector.windows.get(s)
        f = collector.frozen_rows.get(s)
        if w is not None or f is not None:
            level = w.inflight_last if w is not None else f.get("in_flight_last", 0)
            break
    out = []
    for s in range(lo, hi):
        w = collector.windows.get(s)
        f = collector.frozen_rows.get(s)
        if w is not None:
            if cache is None:
                row = w.row(s)
            else:
                key = _row_key(w)
                hit = cache.get(s)
                if hit is not None and hit[0] == key:
                    row = hit[1]
                else:
                    row = w.row(s)
                    cache[s] = (key, row)
            level = w.inflight_last
        elif f is not None:
            row = dict(f)
            level = f.get("in_flight_last", level)
        else:
            row = {"t": s, "requests": 0, "in_flight": level, "ttft_p50_ms": None}
        out.append(row)
    return out


class LiveSaturation:
    """Checks the run once a second; `verdict` is the first detection (None until then).

    ``start_after``: epoch second from which the load counts as steady (after spawning and
    warm-up), or None while it is not yet; ``lag``: seconds behind now still incomplete (on a
    master, the workers' report interval).
    """

    def __init__(
        self,
        collector: Any,
        start_after: Callable[[], float | None],
        *,
        lag: float = 1.0,
        on_fire: Callable[[Verdict], None] | None = None,
    ) -> None:
        self.collector = collector
        self.start_after = start_after
        self.lag = lag
        self.on_fire = on_fire
        self.verdict: Verdict | None = None
        self._greenlet: Any = None
        self._rows: dict[int, tuple[Any, dict[str, Any]]] = {}

    def check(self, now: float) -> Verdict | None:
        """One check at epoch time `now`; returns the verdict once it has fired."""
        if self.verdict is not None:
            return self.verdict
        start = self.start_after()
        if start is None:
            return None
        hi = int(now - self.lag)
        lo = max(hi - TAIL_S, int(start))
        if hi - lo < 2:
            return None
        for old in [t for t in self._rows if t < lo]:
            del self._rows[old]
        v = detect(tail_rows(self.collector, lo, hi, self._rows), start_after=start)
        if v.detected:
            self.verdict = v
            log.warning("locust-llm: SATURATED (live, at %.0f): %s", v.at_t, v.reason)
            if self.on_fire is not None:
                self.on_fire(v)
        return self.verdict

    def to_json(self) -> dict[str, Any]:
        """The live view's ``saturation`` field: the first detection, or not (yet)."""
        if self.verdict is None:
            return {"detected": False, "live": True}
        return {**self.verdict.to_json(), "live": True}

    def start(self, interval: float = 1.0) -> None:
        import time

        import gevent

        def loop() -> None:
            while self.verdict is None:
                gevent.sleep(interval)
                try:
                    self.check(time.time())
                except Exception:  # a check must never take the run down
                    log.exception("locust-llm: live saturation check failed")
                    return

        if self._greenlet is None:
            self._greenlet = gevent.spawn(loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None


def steady_from(rt: Any) -> float | None:
    """Where the runtime's load became steady: after spawning and warm-up, plus one second
    (the same start the end-of-run verdict uses); None while users are still spawning."""
    if rt.spawned_at is None or rt.stopped_at is not None:
        return None
    warm_end = (rt.warmup.start or 0.0) + rt.warmup.seconds
    return max(rt.spawned_at, warm_end) + 1.0
