"""The run's requests by group: request name, model, conversation turn.

One :class:`Window` per group for the whole run (no per-second resolution: a group's summary
is its counts and latency distributions, the run's peaks and charts come from the run's own
windows). A grouping costs nothing while it has seen a single value: that group *is* the
run, so nothing is kept. When a second value appears, the first value's window is seeded
from the run's windows so far (exact: every request until then had that value) and from then
on each request is also folded into its group's window.

Across processes the same rule holds. A worker that has seen one value ships only that value
("everything in this delta had it"); the master attributes the delta's windows to it, or
keeps nothing while it, too, has seen a single value. A worker with several values ships its
group windows (what changed since its last report), which the master adds.

The number of groups is capped (:data:`MAX_GROUPS` per grouping); later values fold into
:data:`OTHER`, said once in the log, so memory stays bounded whatever the locustfile names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from locust_llm.metrics.fold import fold
from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.window import Window

__all__ = ["GROUPINGS", "MAX_GROUPS", "OTHER", "Grouping", "Groups", "group_key"]

log = logging.getLogger("locust_llm")

GROUPINGS = ("name", "model", "turn")
MAX_GROUPS = 64
OTHER = "other"
NONE = "-"  # no value: requests outside a conversation (turn), or without a model


def group_key(kind: str, r: LLMResult) -> str:
    """The group of ``r`` in grouping ``kind``."""
    if kind == "turn":
        return NONE if r.turn is None else str(r.turn)
    return str(getattr(r, kind)) or NONE  # a request refused before it had a model


class Grouping:
    """One grouping's groups (see the module docstring for the single-value rule)."""

    __slots__ = ("kind", "only", "multi", "windows", "seen", "cap", "_capped_logged")

    def __init__(self, kind: str, cap: int = MAX_GROUPS) -> None:
        self.kind = kind
        self.only: str | None = None  # the one value seen so far, while single
        self.multi = False
        self.windows: dict[str, Window] = {}
        self.seen: set[str] = set()  # values given a group of their own (the cap counts them)
        self.cap = cap
        self._capped_logged = False

    def _capped(self, key: str) -> str:
        if key in self.seen:
            return key
        if len(self.seen) >= self.cap:
            if not self._capped_logged:
                self._capped_logged = True
                log.warning(
                    "locust-llm: more than %d distinct request %ss; the rest are counted "
                    "together as %r in the per-%s figures",
                    self.cap,
                    self.kind,
                    OTHER,
                    self.kind,
                )
            return OTHER
        self.seen.add(key)
        return key

    def go_multi(self, seed: Callable[[], Window], sketch_only: set[str]) -> None:
        """From now on keep windows; the single value so far gets the run's data so far."""
        if self.multi:
            return
        self.multi = True
        if self.only is not None:
            w = Window(sketch_only, exact_events=False)
            w.merge(seed(), slots=False)
            self.windows[self._capped(self.only)] = w
            self.only = None

    def target(
        self, key: str, seed: Callable[[], Window], sketch_only: set[str]
    ) -> tuple[str, Window] | None:
        """The (group, window) data of value ``key`` goes to, or None while single (the
        run's own windows hold it). Call before that data reaches the run's windows."""
        if not self.multi:
            if self.only is None or self.only == key:
                self.only = key
                return None
            self.go_multi(seed, sketch_only)
        g = self._capped(key)
        w = self.windows.get(g)
        if w is None:
            w = self.windows[g] = Window(sketch_only, exact_events=False)
        return g, w

    def take_delta(self) -> dict[str, Any]:
        """What a worker ships: its single value, or its windows (then forgotten here)."""
        if not self.multi:
            return {"only": self.only} if self.only is not None else {}
        out = {"w": {k: w.to_dict() for k, w in self.windows.items()}}
        self.windows.clear()
        return out if out["w"] else {}

    def reset(self) -> None:
        self.only, self.multi = None, False
        self.windows.clear()
        self.seen.clear()


class Groups:
    """Every grouping of a collector; windows change only through this class."""

    def __init__(self, sketch_only: set[str], cap: int = MAX_GROUPS) -> None:
        self.sketch_only = sketch_only  # the collector's set: the same metrics are sketch-only
        self.by_kind = {k: Grouping(k, cap) for k in GROUPINGS}
        # called with (kind, group, window) whenever whole windows are added to a group
        # (a seed, a worker's delta): the master's Locust rows per group are fed from it
        self.on_window: Callable[[str, str, Window], None] | None = None

    def _seed(self, kind: str, seed: Callable[[], Window]) -> Callable[[], Window]:
        def make() -> Window:
            w = seed()
            if self.on_window is not None and self.by_kind[kind].only is not None:
                self.on_window(kind, self.by_kind[kind].only or "", w)
            return w

        return make

    def add(self, r: LLMResult, seed: Callable[[], Window], good: Any) -> list[tuple[str, str]]:
        """Fold ``r`` into its groups (before the run's windows get it). Returns the
        (grouping, group) pairs it was folded into explicitly."""
        out = []
        for kind, g in self.by_kind.items():
            t = g.target(group_key(kind, r), self._seed(kind, seed), self.sketch_only)
            if t is not None:
                fold(t[1], r, good, slots=False)
                out.append((kind, t[0]))
        return out

    def merge_delta(self, data: dict[str, Any], delta: Callable[[], Window], seed: Any) -> None:
        """Add a worker's groups; ``delta`` folds that report's windows into one (for a
        worker's single value), ``seed`` the master's own so far."""
        for kind, d in data.items():
            g = self.by_kind[kind]
            if "only" in d:
                t = g.target(d["only"], self._seed(kind, seed), self.sketch_only)
                if t is not None:
                    self._add_window(kind, t[0], t[1], delta())
            elif "w" in d:
                g.go_multi(self._seed(kind, seed), self.sketch_only)
                for key, wd in d["w"].items():
                    t = g.target(key, seed, self.sketch_only)
                    if t is not None:
                        self._add_window(kind, t[0], t[1], Window.from_dict(wd))

    def _add_window(self, kind: str, key: str, dst: Window, w: Window) -> None:
        dst.merge(w, slots=False)
        if self.on_window is not None:
            self.on_window(kind, key, w)

    def take_delta(self) -> dict[str, Any]:
        out = {}
        for kind, g in self.by_kind.items():
            d = g.take_delta()
            if d:
                out[kind] = d
        return out

    def drop_samples(self, metric: str) -> None:
        for g in self.by_kind.values():
            for w in g.windows.values():
                w.sketches[metric].drop_samples()

    def reset(self) -> None:
        for g in self.by_kind.values():
            g.reset()

    def grouped(self, kind: str) -> dict[str, Window]:
        """The groups of ``kind`` with their windows; empty while it had a single value."""
        g = self.by_kind[kind]
        return dict(g.windows) if g.multi else {}

    def kinds(self) -> Iterable[str]:
        return [k for k, g in self.by_kind.items() if g.multi]
