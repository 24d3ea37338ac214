"""What the LLM tab and the ``/llm/...`` endpoints serve, computed from the runtime on demand.

Everything is derived from ``environment.llm.collector`` (on the master it holds the windows
merged from every worker), so local, ``--processes`` and master/worker runs look the same and
"reset stats" (which empties the collector) empties the tab too. The live summary leaves out
the serialised histograms (the download has them). Results are memoised by the collector's
version (a poll with nothing new costs a dict lookup) and, while requests keep finishing, for
``TTL_S`` at most, so the page's several requests per refresh, the Locust tab's table and a
Prometheus scrape share one computation; a greenlet is never pre-empted, so the collector
cannot change mid-computation.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable
from typing import Any

from locust_llm.credentials import without_credentials
from locust_llm.metrics.collector import Window

__all__ = ["LiveData", "TABLE_METRICS", "INTERVAL_FIELDS"]

TTL_S = 0.5
UNCHANGED_S = 5.0  # a view of an unchanged collector is reused this long (rows age with time)
TABLE_METRICS = (("TTFT", "ttft"), ("TPOT", "tpot"), ("ITL", "itl"), ("E2E", "e2el"))
INTERVAL_FIELDS = (
    "t",
    "requests",
    "failed",
    "output_tokens",
    "input_tokens",
    "in_flight",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "itl_p50_ms",
    "itl_p99_ms",
    "partial",  # first/last second of the run: covered only in part, not a rate
)


class LiveData:
    """Memoised views over one runtime (``environment.llm``)."""

    def __init__(self, environment: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.environment = environment
        self._clock = clock
        self._cache: dict[str, tuple[float, int, Any]] = {}
        self._gpu: tuple[Any, Any] | None = None  # (SampleTail, GPUSeries) of the sampler

    @property
    def rt(self) -> Any:
        return self.environment.llm

    def _memo(self, key: str, fn: Callable[[], Any]) -> Any:
        now = self._clock()
        version = self.rt.collector.version
        hit = self._cache.get(key)
        if hit is not None and (
            now - hit[0] < TTL_S or (hit[1] == version and now - hit[0] < UNCHANGED_S)
        ):
            return hit[2]
        value = fn()
        self._cache[key] = (now, version, value)
        return value

    def invalidate(self) -> None:
        self._cache.clear()

    # -- views ------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        env = self.environment
        runner = env.runner
        return {
            **self.rt.meta(),
            "host": without_credentials(env.host),
            "state": getattr(runner, "state", None),
            "users": getattr(runner, "user_count", 0),
            "now": time.time(),
        }

    def summary(self) -> dict[str, Any]:
        """The run summary so far (vLLM field names), without intervals and histograms."""

        s = self._memo("summary", lambda: _finite(self.rt.summary(live=True)))
        return {**s, "meta": {**s["meta"], **_finite(self.meta())}}

    def full_summary(self) -> dict[str, Any]:
        """Exactly what ``--llm-summary`` writes at quit (histograms and intervals included)."""
        return _finite(self.rt.summary(folded=True))

    def gpu(self, since: float | None = None) -> dict[str, Any]:
        """GPU samples after `since` per GPU (all without it), labelled by replica; reading
        the sampler's file costs only the lines appended since the previous poll."""
        sampler = getattr(self.rt, "gpu_sampler", None)
        if sampler is None:
            return {"gpus": [], "last_t": since, "off": True}
        if self._gpu is None or self._gpu[0].path != sampler.path:
            from locust_llm.telemetry.series import GPUSeries, SampleTail

            stack = getattr(self.rt, "stack", None)
            groups = {r.name: r.gpus for r in getattr(stack, "replicas", []) if r.gpus}
            self._gpu = (SampleTail(sampler.path), GPUSeries(groups))
        tail, series = self._gpu
        series.extend(tail.read_new())
        return series.since(since)

    def intervals(self) -> list[dict[str, Any]]:
        return self._memo("intervals", lambda: self.rt.live.view().chart_rows())

    def intervals_update(self, epoch: int | None, seq: int | None) -> dict[str, Any]:
        """The chart rows a poller that last saw view ``seq`` of ``epoch`` lacks: every row
        from the first one that may have changed (``from``), or all of them (``from`` None)
        for a first poll or after the view was folded afresh. The poller keeps its rows
        before ``from`` and replaces the rest, and sends back ``epoch`` and ``seq``: a poll
        costs the rows that moved (the open seconds at the end), not the run's length."""
        live = self.rt.live
        fold = live.view()
        start = None if epoch is None or seq is None else live.changed_since(epoch, seq)
        # the rows of this very view (not the memoised list, which may be an older view's):
        # the poller is told this view's seq, and later tails are counted from it
        rows = fold.chart_rows(start)
        return {"epoch": live.epoch, "seq": live.seq, "from": start, "rows": rows}

    def slo(self) -> list[dict[str, Any]]:
        return self.summary()["slo"]

    def merged_window(self) -> Window:
        return self._memo("merged", lambda: self.rt.live.view().total)

    def table_rows(self) -> list[dict[str, Any]]:
        """Rows for Locust's own LLM tab table: exact percentiles in ms, 2 decimals."""
        s = self.summary()
        rows = []
        for label, m in TABLE_METRICS:
            row: dict[str, Any] = {"name": label, "count": s[f"count_{m}"]}
            for stat in ("mean", "p50", "p90", "p95", "p99", "max"):
                row[stat] = round(s[f"{stat}_{m}_ms"], 2)
            rows.append(row)
        return rows

    def intervals_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=INTERVAL_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(self.intervals())
        return buf.getvalue()

    def prom_snapshot(self) -> tuple[Window, dict[str, float]]:
        extras: dict[str, float] = {
            "users": float(getattr(self.environment.runner, "user_count", 0))
        }
        rows = self.intervals()
        if len(rows) >= 2:
            extras["in_flight"] = float(rows[-2]["in_flight"])
        return self.merged_window(), extras


def _finite(obj: Any) -> Any:
    """JSON has no inf/nan: replace them with None (e.g. min of an empty window)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
