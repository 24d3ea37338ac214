"""`locust-llm run FILE.toml [...]`: run every scenario of a file, then build the report.

Exit codes: 0 all scenarios ran and met their SLOs; 3 some scenario failed an SLO (as
`--llm-slo` on a plain locust run); 1 some scenario could not run; 2 bad file/arguments;
130 interrupted (finished scenarios are kept, and the same command resumes).
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path

from .command import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_SLO,
    EXIT_USAGE,
    add_shared_arguments,
    apply_overrides,
    write_report,
)
from .search import file_extras
from .spec import ScenarioError, ScenarioSpec, load_file, parse_duration

__all__ = ["apply_overrides", "main", "parser", "run_all"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="locust-llm run",
        description="Run a scenario file: for each scenario bring the backend up, run Locust "
        "headless, scrape server metrics, tear down; then write reports/<run-id>/report.html.",
    )
    add_shared_arguments(
        p,
        file_help="scenario file (TOML)",
        backends=("emulator", "cpu", "gpu"),
        backend_help="run every scenario on this backend instead of its own "
        "(emulator: no vLLM needed)",
        run_time_help="override every scenario's duration (e.g. 5s)",
        fresh_help="re-run finished scenarios too",
    )
    p.add_argument(
        "--model",
        help="serve this model in every scenario instead of the file's (a local folder or hub "
        "id; several-model scenarios keep their names and serve it under each)",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only scenarios whose name matches this glob (repeatable)",
    )
    p.add_argument(
        "--validate",
        action="store_true",
        help="parse and expand the file, print the scenarios and check each one's Locust "
        "options as its run would (options, SLOs, dataset files); start nothing",
    )
    return p


def describe(specs: list[ScenarioSpec]) -> str:
    lines = []
    for s in specs:
        p = s.params
        dur = f"{s.run_time:g}s" if s.run_time else f"{p.get('requests')} requests"
        lines.append(
            f"{s.index + 1:>3}. {s.name}: backend={p['backend']} users={p['users']} "
            f"replicas={p.get('replicas') or '-'} tp={p.get('tp')} lb={p.get('lb')} {dur}"
            + (f" slo={','.join(p['slo'])}" if p.get("slo") else "")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        specs = load_file(args.file)
        run_time = parse_duration(args.run_time) if args.run_time else None
    except ScenarioError as e:
        print(f"locust-llm run: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as e:
        print(f"locust-llm run: --run-time: expected {e}", file=sys.stderr)
        return EXIT_USAGE
    apply_overrides(specs, args.backend, run_time, args.model)
    if args.only:
        specs = [s for s in specs if any(fnmatch.fnmatchcase(s.name, o) for o in args.only)]
        if not specs:
            print(f"locust-llm run: no scenario matches {args.only}", file=sys.stderr)
            return EXIT_USAGE
    if args.validate:
        print(describe(specs))
        from locust_llm.scenarios.validate import validate_specs

        errors = validate_specs(specs)
        try:
            file_extras(args.file)  # [search] and gate, as the run reads them
        except ScenarioError as e:
            errors.append(str(e))
        for e in errors:
            print(f"locust-llm run: {e}", file=sys.stderr)
        return EXIT_USAGE if errors else 0
    from .repeats import expand

    try:
        _, gates = file_extras(args.file)
    except ScenarioError as e:
        print(f"locust-llm run: {e}", file=sys.stderr)
        return EXIT_USAGE
    specs = expand(specs)
    run_id = args.run_id or args.file.stem
    run_dir = args.out / run_id
    return run_all(specs, run_dir, fresh=args.fresh, report=not args.no_report, gates=gates)


def run_all(
    specs: list[ScenarioSpec],
    run_dir: Path,
    *,
    fresh: bool = False,
    report: bool = True,
    gates: list | None = None,
) -> int:
    """Run (or resume) `specs` into `run_dir`; returns the exit code described above.
    With `gates` the file's result decides (0 when every gate holds, else 3) instead of each
    scenario's SLOs: a sweep past saturation fails its top levels by design."""
    from .result import sweep_family
    from .runner import Outcome, Progress, is_done, run_scenario

    run_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress(specs)
    print(
        f"locust-llm run: {len(specs)} scenario(s) -> {run_dir}  (ETA {progress.eta(len(specs))})",
        flush=True,
    )
    outcomes: list[Outcome] = []
    interrupted = False
    saturated_at: dict[str, float] = {}  # sweep family -> lowest saturated axis value
    try:
        for i, spec in enumerate(specs):
            d = run_dir / spec.name
            left = len(specs) - i - 1
            fam = sweep_family(spec.params, spec.swept)
            if fam and fam[0] in saturated_at and fam[2] > saturated_at[fam[0]]:
                progress.skipped(spec)
                progress.line(spec, f"skipped: {fam[1]}={saturated_at[fam[0]]:g} already saturated")
                outcomes.append(Outcome(spec.name, "skipped_saturated"))
                continue
            if not fresh and is_done(d, spec):
                progress.skipped(spec)
                progress.line(spec, "finished earlier, kept (use --fresh to re-run)")
                outcomes.append(Outcome(spec.name, "skipped"))
                continue
            outcomes.append(run_scenario(spec, d, progress, left))
            if fam and outcomes[-1].saturated:
                saturated_at[fam[0]] = min(saturated_at.get(fam[0], fam[2]), fam[2])
    except KeyboardInterrupt:
        interrupted = True
        print(
            "locust-llm run: interrupted; finished scenarios are kept, re-run to resume",
            file=sys.stderr,
            flush=True,
        )
    if report:
        write_report(run_dir, "locust-llm run")
    errors = [o for o in outcomes if o.status == "error"]
    slo_failed = [o for o in outcomes if o.status == "slo_failed"]
    skipped_failed = [
        s.name
        for s in specs
        if any(o.name == s.name and o.status == "skipped" for o in outcomes)
        and _done_slo_failed(run_dir / s.name)
    ]
    if interrupted:
        return EXIT_INTERRUPTED
    if errors:
        print(
            f"locust-llm run: {len(errors)} scenario(s) failed to run: "
            + ", ".join(o.name for o in errors),
            file=sys.stderr,
        )
        return EXIT_ERROR
    if gates:
        return _gate(run_dir, gates)
    if slo_failed or skipped_failed:
        names = [o.name for o in slo_failed] + skipped_failed
        print(f"locust-llm run: SLO FAILED in {', '.join(names)}", file=sys.stderr)
        return EXIT_SLO
    return 0


def _gate(run_dir: Path, gates: list) -> int:
    import json

    from .gate import format_row
    from .result import run_result

    result = run_result(run_dir)
    rows = [g.check(result) for g in gates]
    (run_dir / "gate.json").write_text(json.dumps({"result": result, "gate": rows}, indent=2))
    for r in rows:
        print(f"locust-llm run: {format_row(r)}", flush=True)
    return 0 if all(r["passed"] for r in rows) else EXIT_SLO


def _done_slo_failed(d: Path) -> bool:
    import json

    try:
        return json.loads((d / ".done").read_text()).get("slo_passed") is False
    except (OSError, ValueError):
        return False
