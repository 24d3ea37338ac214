"""What `locust-llm run` and `locust-llm search` share: their common arguments, the
command-line overrides applied to a file's scenarios, the exit codes and the report written
at the end. Both subcommands import this module and neither imports the other, so the two
stay independent of each other."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from locust_llm.checks import SLO_EXIT_CODE

from .spec import ScenarioSpec

EXIT_SLO = SLO_EXIT_CODE
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def add_shared_arguments(
    p: argparse.ArgumentParser,
    *,
    file_help: str,
    backends: tuple[str, ...],
    backend_help: str,
    run_time_help: str,
    fresh_help: str,
) -> None:
    """The arguments both subcommands take, declared once so their names, types and
    defaults cannot drift apart; only the wording that names each command's unit of work
    (scenario or probe) differs."""
    p.add_argument("file", type=Path, help=file_help)
    p.add_argument("--backend", choices=backends, help=backend_help)
    p.add_argument("--run-time", help=run_time_help)
    p.add_argument(
        "--run-id",
        help="results go to OUT/RUN_ID (default: the file's name); "
        "re-running with the same id resumes",
    )
    p.add_argument("--out", type=Path, default=Path("reports"), help="output root (reports)")
    p.add_argument("--fresh", action="store_true", help=fresh_help)
    p.add_argument("--no-report", action="store_true", help="skip building report.html")


def apply_overrides(
    specs: list[ScenarioSpec],
    backend: str | None,
    run_time: float | None,
    model: str | None = None,
) -> None:
    """`--backend emulator`: every scenario on the emulator, placement-only fields dropped
    (vllm_cmd/urls mean nothing there; baseline stays as a label). `--backend cpu|gpu`: real
    vLLM, external urls dropped. `--model`: the model every replica serves (a file written for
    a big model runs on a small one).  `--run-time`: every duration replaced; the warm-up is
    capped at a fifth of it so a smoke run still measures something."""
    for s in specs:
        p = s.params
        if backend:
            p["backend"] = backend
            p.pop("urls", None)
            if backend == "emulator":
                p.pop("vllm_cmd", None)
        if model:
            if p.get("models"):
                p["models"] = [{**m, "model": model} for m in p["models"]]
            else:
                p["model"] = model
        if backend:
            if not p.get("model") and not p.get("models"):
                p["model"] = "emulated-model"
        if run_time is not None:
            p["run_time"] = run_time
            p["warmup"] = min(float(p.get("warmup") or 0.0), run_time / 5)
            if p.get("kill_replica"):
                p["kill_replica"] = {
                    **p["kill_replica"],
                    "at": min(p["kill_replica"]["at"], run_time / 2),
                }


def write_report(run_dir: Path, prog: str) -> None:
    """report.html for `run_dir`; Ctrl-C is ignored while it is written so an interrupted
    run still leaves a whole report of what finished."""
    import threading

    from locust_llm.report import build_report

    main = threading.current_thread() is threading.main_thread()  # handlers: main thread only
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        path = build_report([run_dir], run_dir)
        print(f"report: {path}", flush=True)
    except ValueError:
        print(f"{prog}: no finished scenario, no report", file=sys.stderr)
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
