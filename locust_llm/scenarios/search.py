"""`locust-llm search FILE.toml`: the highest load (users or rate) meeting every SLO.

The file holds one scenario (its SLOs are the bound) and a `[search]` table:

    [search]
    by = "users"          # or "rate": requests/s (options.rate -> --llm-rate when the scenario
                          # sets it, an open loop; else the --ips cap)
    min = 4
    max = 128
    tolerance = 4         # stop when the bracket [pass, fail] is no wider
    repeat = 1            # runs per probe; a probe passes only when every run passes
    stack = "warm"        # "warm": one backend for all probes; "fresh": one per probe
    run_time = "30s"      # per probe (default: the scenario's)

Each probe is a normal scenario run (`<name>-<by>-<value>` under the run directory, so the
report plots them as a sweep); a probe passes when every SLO holds and the run did not
saturate. The result goes to `search.json` and into the run's `summary.json` (`search`).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bisect import Bisection
from .command import (
    EXIT_INTERRUPTED,
    EXIT_SLO,
    EXIT_USAGE,
    add_shared_arguments,
    apply_overrides,
    write_report,
)
from .gate import Gate, format_row, parse_gates
from .spec import ScenarioError, ScenarioSpec, load_file, parse_duration

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SEARCH_JSON = "search.json"
_KEYS = ("by", "min", "max", "tolerance", "repeat", "stack", "run_time")


@dataclass(frozen=True)
class SearchConfig:
    by: str
    min: float
    max: float
    tolerance: float
    repeat: int = 1
    stack: str = "warm"
    run_time: float | None = None

    @property
    def integer(self) -> bool:
        return self.by == "users"

    @property
    def result_field(self) -> str:
        return f"max_{self.by}_meeting_slo"


def parse_search(raw: Any, path: Path) -> SearchConfig:
    """The `[search]` table; ScenarioError names the key and what is allowed."""

    def bad(key: str, msg: str) -> ScenarioError:
        return ScenarioError(f"{path}: [search] key {key!r}: {msg}")

    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: 'search' must be a table: [search]")
    for k in raw:
        if k == "gate":
            raise bad(k, "gate is a top-level key: put it above the first [table] of the file")
        if k not in _KEYS:
            raise bad(k, f"unknown key; allowed: {', '.join(_KEYS)}")
    by = raw.get("by", "users")
    if by not in ("users", "rate"):
        raise bad("by", f"got {by!r}; expected 'users' or 'rate'")
    nums: dict[str, float] = {}
    for k in ("min", "max", "tolerance"):
        v = raw.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise bad(k, f"got {v!r}; expected a number > 0 (required)")
        if by == "users" and k != "tolerance" and v != int(v):
            raise bad(k, f"got {v!r}; users are whole numbers")
        nums[k] = float(v)
    if nums["min"] >= nums["max"]:
        raise bad("max", f"max {nums['max']:g} must be above min {nums['min']:g}")
    if by == "users" and nums["tolerance"] < 1:
        raise bad("tolerance", "users are whole numbers: a tolerance of at least 1")
    repeat = raw.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise bad("repeat", f"got {repeat!r}; expected an integer >= 1")
    stack = raw.get("stack", "warm")
    if stack not in ("warm", "fresh"):
        raise bad("stack", f"got {stack!r}; expected 'warm' (one backend) or 'fresh' (per probe)")
    rt = None
    if "run_time" in raw:
        try:
            rt = parse_duration(raw["run_time"])
        except ValueError as e:
            raise bad("run_time", f"got {raw['run_time']!r}; expected {e}") from None
    return SearchConfig(by, nums["min"], nums["max"], nums["tolerance"], repeat, stack, rt)


def file_extras(path: Path) -> tuple[SearchConfig | None, list[Gate]]:
    """The file-level `[search]` and `gate` (load_file has validated the rest)."""
    doc = tomllib.loads(Path(path).read_text())
    search = parse_search(doc["search"], path) if "search" in doc else None
    gates: list[Gate] = []
    if "gate" in doc:
        try:
            gates = parse_gates(doc["gate"])
        except ValueError as e:
            raise ScenarioError(f"{path}: {e}") from None
    return search, gates


def _fmt(v: float) -> str:
    return f"{v:g}"


def probe_spec(base: ScenarioSpec, cfg: SearchConfig, value: float, rep: int) -> ScenarioSpec:
    """One probe: the scenario with its load set to `value` (and the probe's run time)."""
    params = copy.deepcopy(base.params)
    if cfg.by == "users":
        params["users"] = int(value)
        params.pop("spawn_rate", None)
    elif "rate" in (params.get("options") or {}):
        params["options"]["rate"] = value
    else:
        params["rate"] = value
    if cfg.run_time is not None:
        params["run_time"] = cfg.run_time
        params["warmup"] = min(float(params.get("warmup") or 0.0), cfg.run_time / 5)
    name = f"{base.name}-{cfg.by}-{_fmt(value)}" + (f"-r{rep}" if cfg.repeat > 1 else "")
    params["name"] = name
    if cfg.repeat > 1:
        params["repeat_of"] = f"{base.name}-{cfg.by}-{_fmt(value)}"
    return ScenarioSpec(name, base.index, params, base.source, {cfg.by: value})


def probe_figures(summary: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "completed",
        "failed",
        "request_throughput",
        "output_throughput",
        "mean_ttft_ms",
        "p95_ttft_ms",
        "p99_ttft_ms",
        "p99_itl_ms",
        "max_concurrent_requests",
    )
    out = {k: summary.get(k) for k in keys}
    sat = summary.get("saturation") or {}
    # a saturated probe fails whatever its SLOs say: its figures measure a growing queue
    out["saturated"] = bool(sat.get("detected"))
    if out["saturated"]:
        out["saturation"] = {k: sat.get(k) for k in ("series", "at_s", "growth", "reason")}
    return out


def run_search(
    base: ScenarioSpec,
    cfg: SearchConfig,
    run_dir: Path,
    *,
    fresh: bool = False,
    out: Any = None,
) -> dict[str, Any]:
    """Probe until the bracket is within tolerance; returns (and writes) the result."""
    from locust_llm.backends import Stack

    from .runner import Progress, is_done, make_plan_for, run_scenario

    out = out or sys.stdout
    run_dir.mkdir(parents=True, exist_ok=True)
    bis = Bisection(cfg.min, cfg.max, cfg.tolerance, integer=cfg.integer)
    probes: list[dict[str, Any]] = []
    stack = None
    progress = Progress([base])
    try:
        if cfg.stack == "warm":
            (run_dir / "_stack").mkdir(exist_ok=True)
            stack = Stack(
                make_plan_for(base),
                run_dir=run_dir / "_stack",
                log=lambda m: None,
                ready_timeout=float(base.params.get("ready_timeout") or 900.0),
            )
            stack.start()
            print(f"locust-llm search: warm backend up at {stack.url}", file=out, flush=True)
        while (value := bis.next_value()) is not None:
            runs = []
            for rep in range(1, cfg.repeat + 1):
                spec = probe_spec(base, cfg, value, rep)
                d = run_dir / spec.name
                if fresh or not is_done(d, spec):
                    run_scenario(spec, d, Progress([spec], stream=out), 0, warm_stack=stack)
                try:
                    summary = json.loads((d / "summary.json").read_text())
                except (OSError, ValueError):
                    summary = None
                runs.append((spec, summary))
            probe = _probe_row(cfg, value, runs)
            bis.record(value, probe["passed"])
            probes.append(probe)
            print(f"locust-llm search: {_probe_line(cfg, probe)}", file=out, flush=True)
    finally:
        if stack is not None:
            stack.stop()
    del progress
    state = bis.state()
    result = {
        "by": cfg.by,
        cfg.result_field: state["best"],
        "bracket": state["bracket"],
        "tolerance": cfg.tolerance,
        "range": [cfg.min, cfg.max],
        "repeat": cfg.repeat,
        "stack": cfg.stack,
        "slo": list(base.params.get("slo") or []),
        "note": state["converged_note"],
        "scenario": base.name,
        "probes": probes,
    }
    (run_dir / SEARCH_JSON).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def _probe_row(
    cfg: SearchConfig, value: float, runs: list[tuple[ScenarioSpec, dict | None]]
) -> dict[str, Any]:
    ok_all = True
    saturated = False
    failing: list[str] = []
    for _, s in runs:
        if s is None:
            ok_all = False
            failing.append("no summary (the run failed)")
            continue
        rows = s.get("slo") or []
        for r in rows:
            if not r.get("passed"):
                failing.append(r["expr"])
        sat = bool((s.get("saturation") or {}).get("detected"))
        saturated = saturated or sat
        ok_all = ok_all and bool(rows) and all(r.get("passed") for r in rows) and not sat
    return {
        "value": value,
        "passed": ok_all,
        "saturated": saturated,
        "failed_slo": sorted(set(failing)),
        "runs": [
            {"scenario": sp.name, **(probe_figures(s) if s else {"error": True})} for sp, s in runs
        ],
    }


def _probe_line(cfg: SearchConfig, p: dict[str, Any]) -> str:
    first = p["runs"][0]
    ttft = first.get("p99_ttft_ms")
    verdict = "PASS" if p["passed"] else "FAIL"
    sat = next((r["saturation"] for r in p["runs"] if r.get("saturation")), None)
    what = f" saturated ({sat['series']} growing from {sat['at_s'] or 0:.0f} s)" if sat else ""
    extra = (what or (" saturated" if p["saturated"] else "")) + (
        f" ({', '.join(p['failed_slo'])})" if p["failed_slo"] else ""
    )
    return (
        f"{cfg.by}={_fmt(p['value'])}: {verdict}{extra}; "
        f"{first.get('output_throughput') or 0:.1f} tok/s, TTFT p99 {ttft or 0:.0f} ms"
    )


def format_result(result: dict[str, Any]) -> list[str]:
    field = f"max_{result['by']}_meeting_slo"
    best = result[field]
    lo, hi = result["bracket"]
    lines = [
        f"{field}: {'none' if best is None else _fmt(best)}  "
        f"(bracket [{'-' if lo is None else _fmt(lo)}, {'-' if hi is None else _fmt(hi)}], "
        f"tolerance {_fmt(result['tolerance'])}, {len(result['probes'])} probes)",
        f"  {result['note']}; SLO: {', '.join(result['slo'])}",
    ]
    return lines


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="locust-llm search",
        description="Find the highest load meeting every SLO of a scenario file's [search] "
        "scenario: bracket by doubling, then bisect; report in reports/<run-id>/.",
    )
    add_shared_arguments(
        p,
        file_help="scenario file (TOML) with a [search] table",
        backends=("emulator",),
        backend_help="run the probes on the emulator",
        run_time_help="override each probe's duration (e.g. 10s)",
        fresh_help="re-run probes finished earlier",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        specs = load_file(args.file)
        cfg, gates = file_extras(args.file)
        run_time = parse_duration(args.run_time) if args.run_time else None
    except ScenarioError as e:
        print(f"locust-llm search: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as e:
        print(f"locust-llm search: --run-time: expected {e}", file=sys.stderr)
        return EXIT_USAGE
    if cfg is None:
        print(
            f"locust-llm search: {args.file}: no [search] table; add one with by, min, max, "
            "tolerance (see scenarios/README.md)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if len(specs) != 1:
        print(
            f"locust-llm search: {args.file}: a search runs one scenario, the file expands to "
            f"{len(specs)}; keep one [[scenario]] without swept lists",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not specs[0].params.get("slo"):
        print(
            f"locust-llm search: {args.file}: the scenario has no slo; the search needs one "
            '(e.g. slo = ["ttft_p99<=500ms"])',
            file=sys.stderr,
        )
        return EXIT_USAGE
    apply_overrides(specs, args.backend, None)
    if run_time is not None:
        cfg = SearchConfig(**{**cfg.__dict__, "run_time": run_time})
    run_dir = args.out / (args.run_id or args.file.stem)
    try:
        result = run_search(specs[0], cfg, run_dir, fresh=args.fresh)
    except KeyboardInterrupt:
        print("locust-llm search: interrupted; finished probes are kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    for line in format_result(result):
        print(line, flush=True)
    rows = [g.check(result) for g in gates]
    result["gate"] = rows
    (run_dir / SEARCH_JSON).write_text(json.dumps(result, indent=2, default=str) + "\n")
    if not args.no_report:
        write_report(run_dir, "locust-llm search")
    for r in rows:
        print(format_row(r), flush=True)
    if gates:
        return 0 if all(r["passed"] for r in rows) else EXIT_SLO
    return 0 if result[cfg.result_field] is not None else EXIT_SLO
