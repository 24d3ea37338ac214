"""Read finished scenario directories into memory.

A run directory (`reports/<run-id>/`) holds one sub-directory per scenario; a scenario
directory holds the files the scenario runner and the Locust plugin write:

- `summary.json`        vLLM `bench serve` field names (docs/ARCHITECTURE.md), required;
- `records.jsonl`       one finished request per line, durations in ms, optional;
- `scenario.json`       the scenario's resolved parameters (`users`, `tp`, `lb`, ...), optional;
- `server_metrics.jsonl` replica gauges and nginx stub_status, one sample per line, optional:
      {"t": epoch, "replica": "r0", "model": "m", "num_requests_running": 3,
       "num_requests_waiting": 0, "kv_cache_usage_perc": 0.12, "prefix_cache_queries_total":
       1234, "prefix_cache_hits_total": 640, ...}   (counters: servermetrics.COUNTERS)
      {"t": epoch, "nginx": {"active": 5, "reading": 0, "writing": 3, "waiting": 2, ...}}
      {"t": epoch, "replica": "r0", "error": "connection refused"}
- `gpu_telemetry.jsonl` the GPU sampler's lines (locust_llm.telemetry.sampler), optional;
- `events.jsonl`        things that happened at a time, optional:
      {"t": epoch, "kind": "replica_killed", "detail": "r1"}

Everything here tolerates missing optional files and blank or truncated last lines (a run
killed with Ctrl-C leaves one), because a report of a partial run is still worth having.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from locust_llm.metrics.record import LLMResult

SUMMARY = "summary.json"
RECORDS = "records.jsonl"
SCENARIO = "scenario.json"
SERVER_METRICS = "server_metrics.jsonl"
EVENTS = "events.jsonl"
GPU_SAMPLES = "gpu_telemetry.jsonl"


@dataclass
class Samples:
    """Per-request latency samples (ms) pulled out of records.jsonl, as numpy arrays.

    Kept as raw samples (not sketches) because the bootstrap resamples requests.
    """

    ttft: np.ndarray
    tpot: np.ndarray
    itl: np.ndarray
    e2el: np.ndarray
    t_start: np.ndarray
    ok: np.ndarray
    errors: dict[str, int]

    @classmethod
    def empty(cls) -> Samples:
        z = np.zeros(0)
        return cls(z, z, z, z, z, np.zeros(0, dtype=bool), {})

    def metric(self, name: str) -> np.ndarray:
        """Samples of `ttft`, `tpot`, `itl` or `e2el` (the summary's metric names)."""
        return getattr(self, name)

    def __len__(self) -> int:
        return len(self.t_start)


@dataclass
class Scenario:
    """One finished scenario: what was asked (params) and what was measured."""

    name: str
    run_id: str
    path: Path
    summary: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    samples: Samples = field(default_factory=Samples.empty)
    server: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    gpu_samples: list[dict[str, Any]] = field(default_factory=list)
    # a repeat group seen as one scenario (report.repeats.collapse): its runs, and each
    # numeric summary field's mean/CV/95 % CI over them; empty for a single run
    repeats: list[Scenario] = field(default_factory=list)
    ci: dict[str, dict[str, Any]] = field(default_factory=dict)

    def slo_passed(self) -> bool | None:
        """True/False when SLOs were evaluated, None when the scenario had none."""
        slo = self.summary.get("slo") or []
        if not slo:
            return None
        return all(bool(s.get("passed")) for s in slo)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Lines that parse as JSON objects; a torn last line (killed writer) is skipped."""
    out: list[dict[str, Any]] = []
    if not path.is_file():
        return out
    with path.open("rb") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out


def _result(r: dict[str, Any]) -> LLMResult:
    """A record back as the LLMResult it was written from (the fields the metrics use)."""
    res = LLMResult(name=str(r.get("name") or ""))
    for k in ("ttft", "e2e", "stream_closed", "t_start"):
        v = r.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            setattr(res, k, float(v))
    n = r.get("output_tokens")
    res.output_tokens = int(n) if isinstance(n, (int, float)) else 0
    gaps = r.get("itl")
    res.itl = (
        [float(g) for g in gaps if isinstance(g, (int, float))] if isinstance(gaps, list) else []
    )
    shared = r.get("shared")
    res.shared = [int(i) for i in shared] if isinstance(shared, list) else None
    res.error = str(r["error"]) if r.get("error") else None
    res.error_key = str(r["error_key"]) if r.get("error_key") else None
    res.aborted = bool(r.get("aborted"))
    res.cancelled = bool(r.get("cancelled"))
    res.warmup = bool(r.get("warmup"))
    return res


def samples_from_records(records: list[dict[str, Any]]) -> Samples:
    """Latency arrays by the same definitions as the summary: each record is read back into
    an :class:`LLMResult` and its own ``tpot`` and ``exact_itl()`` are used, so warm-up
    requests are left out and, with kernel stamps, ITL gaps touching a shared read are
    excluded, exactly as the collector does. Failed requests count in `ok`/`errors` but
    contribute no latency samples, as in `vllm bench serve`.
    """
    if not records:
        return Samples.empty()
    ttft, tpot, e2el, itl, t_start, ok = [], [], [], [], [], []
    errors: dict[str, int] = {}
    for rec in records:
        r = _result(rec)
        if r.warmup:
            continue
        ok.append(r.ok)
        t_start.append(r.t_start if "t_start" in rec else np.nan)
        if r.error and not r.aborted and not r.cancelled:
            key = r.error_key or r.error
            errors[key] = errors.get(key, 0) + 1
        if not r.ok:
            continue
        if r.ttft is not None:
            ttft.append(r.ttft)
        if r.e2e is not None:
            e2el.append(r.e2e)
        if r.tpot is not None:
            tpot.append(r.tpot)
        itl.extend(r.exact_itl())

    def arr(xs: list[float]) -> np.ndarray:
        a = np.asarray(xs, dtype=float)
        return a[np.isfinite(a)]

    return Samples(
        ttft=arr(ttft),
        tpot=arr(tpot),
        itl=arr(itl),
        e2el=arr(e2el),
        t_start=np.asarray(t_start, dtype=float),
        ok=np.asarray(ok, dtype=bool),
        errors=errors,
    )


def load_scenario(path: Path, run_id: str | None = None) -> Scenario:
    """Load one scenario directory; raises FileNotFoundError without a summary.json."""
    path = Path(path)
    summary = json.loads((path / SUMMARY).read_text())
    params: dict[str, Any] = {}
    if (path / SCENARIO).is_file():
        params = json.loads((path / SCENARIO).read_text())
    if "users" not in params and isinstance(summary.get("meta"), dict):
        users = summary["meta"].get("users")
        if users is not None:
            params["users"] = users
    name = str(params.get("name") or path.name)
    return Scenario(
        name=name,
        run_id=run_id or path.parent.name,
        path=path,
        summary=summary,
        params=params,
        samples=samples_from_records(read_jsonl(path / RECORDS)),
        server=read_jsonl(path / SERVER_METRICS),
        events=read_jsonl(path / EVENTS),
        gpu_samples=read_jsonl(path / GPU_SAMPLES),
    )


def is_scenario_dir(d: Path) -> bool:
    """Holds a scenario's summary.json, not the run-level summary.json a report writes
    next to the scenario directories (that one has a "scenarios" list)."""
    try:
        doc = json.loads((Path(d) / SUMMARY).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and "scenarios" not in doc


def scenario_dirs(run_dir: Path) -> list[Path]:
    """Scenario directories of a run, in the order they ran.

    A directory that itself holds a summary.json is a one-scenario run (a plain
    `locust --llm-summary` output can be reported on directly).  Order: `order` in
    scenario.json when present, else the summary's start time, else the name.
    """
    run_dir = Path(run_dir)
    if is_scenario_dir(run_dir):
        return [run_dir]
    dirs = [d for d in sorted(run_dir.iterdir()) if d.is_dir() and is_scenario_dir(d)]

    def key(d: Path) -> tuple[float, float, str]:
        order, started = float("inf"), float("inf")
        try:
            p = json.loads((d / SCENARIO).read_text())
            order = float(p.get("order", order))
        except (OSError, ValueError, TypeError):
            pass
        try:
            meta = json.loads((d / SUMMARY).read_text()).get("meta") or {}
            started = float(meta.get("started_at", started))
        except (OSError, ValueError, TypeError, AttributeError):
            pass
        return (order, started, d.name)

    return sorted(dirs, key=key)


def load_runs(run_dirs: list[Path]) -> list[Scenario]:
    """All scenarios of one or more runs; names are prefixed with the run id when merging
    several runs so that equal scenario names stay distinguishable."""
    scenarios: list[Scenario] = []
    multi = len(run_dirs) > 1
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        for d in scenario_dirs(run_dir):
            run_id = run_dir.name  # a single scenario dir given directly is its own run
            sc = load_scenario(d, run_id=run_id)
            if multi:
                sc.name = f"{run_dir.name}/{sc.name}"
            scenarios.append(sc)
    return scenarios
