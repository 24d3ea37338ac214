"""Per-GPU time series for charts, grown from the sampler's file as it is written.

The LLM tab polls every 2 s while a run may last hours: `SampleTail` remembers its file
offset and parses only the bytes appended since the last read (a line the sampler is still
writing waits for its newline), and `GPUSeries.since(t)` answers with the samples after `t`
found by bisection, so one poll costs O(new samples), not O(run).
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

FIELDS = ("util", "mem_used_mib", "power_w", "sm_clock_mhz")
# what each series is, for chart titles (and the order the charts come in)
LABELS = {
    "util": ("GPU utilization", "%"),
    "mem_used_mib": ("GPU memory used", "MiB"),
    "power_w": ("GPU power", "W"),
    "sm_clock_mhz": ("SM clock", "MHz"),
}
MAX_POINTS = 36_000  # per GPU: two hours at the sampler's 0.2 s; older points are dropped


class SampleTail:
    """New complete lines of a JSONL file since the last call (a torn line is skipped)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self._partial = b""

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return []
        if not chunk:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" after a complete last line
        out = []
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and "gpu" in row and "t" in row:
                out.append(row)
        return out


class GPUSeries:
    """Column-wise samples per GPU, in time order, with the replica each GPU serves."""

    def __init__(self, groups: Mapping[str, Sequence[int]] | None = None) -> None:
        self.cols: dict[int, dict[str, list[Any]]] = {}
        self.replica_of = replica_map(groups)

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        for r in sorted(rows, key=lambda r: (r["t"], r["gpu"])):
            c = self.cols.setdefault(int(r["gpu"]), {k: [] for k in ("t", *FIELDS)})
            if c["t"] and r["t"] < c["t"][-1]:
                continue  # out of order (a restarted sampler): keep the series sorted
            c["t"].append(float(r["t"]))
            for k in FIELDS:
                c[k].append(r.get(k))
            if len(c["t"]) > MAX_POINTS:
                for k in c:
                    del c[k][: len(c[k]) - MAX_POINTS // 2]

    def since(self, t: float | None = None) -> dict[str, Any]:
        """Samples strictly after `t` (all without it), per GPU, labelled by replica."""
        gpus = []
        for i in sorted(self.cols):
            c = self.cols[i]
            j = 0 if t is None else bisect_right(c["t"], t)
            gpus.append(
                {"gpu": i, "replica": self.replica_of.get(i), **{k: v[j:] for k, v in c.items()}}
            )
        last = max((c["t"][-1] for c in self.cols.values() if c["t"]), default=t)
        return {"gpus": gpus, "last_t": last}


def replica_map(groups: Mapping[str, Sequence[int]] | None) -> dict[int, str]:
    """GPU index -> replica name, from the plan's GPU groups (replica -> indices)."""
    return {int(i): name for name, ids in (groups or {}).items() for i in ids}


def series_of(
    samples: Iterable[dict[str, Any]], groups: Mapping[str, Sequence[int]] | None = None
) -> dict[str, Any]:
    """A whole file's series at once (the report's view of a finished run)."""
    s = GPUSeries(groups)
    s.extend(samples)
    return s.since(None)
