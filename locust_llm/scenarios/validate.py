"""``locust-llm run --validate``: each scenario's Locust command line, checked by Locust itself.

Why a real Locust process: the options a scenario may set are those of its locustfile (the
plugin's, the workload's and the locustfile's own), and the checks a run makes (option values,
SLO expressions, dataset files, model mixes) live in the plugin's start-up. Running the exact
command line the run would use, stopped right after those checks (``CHECK_ONLY_ENV``), gives
the run's verdict without a backend, a server or any load.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from locust_llm.plugin import CHECK_ONLY_ENV
from locust_llm.scenarios.runner import locust_argv, needs_shim
from locust_llm.scenarios.spec import ScenarioSpec

__all__ = ["explain", "validate_specs"]

PLACEHOLDER_HOST = "http://127.0.0.1:9"  # never contacted: the check stops before any request
CHECK_TIMEOUT_S = 120.0
_SIZE_FLAGS = frozenset(("-u", "-r", "-t", "--iterations", "--ips"))
_UNRECOGNIZED = re.compile(r"unrecognized arguments: (.*)$", re.M)


def explain(spec: ScenarioSpec, output: str) -> str:
    """One line for a failed check, naming the scenario and, for an option the locustfile does
    not accept, the ``options`` key it came from."""
    lf = Path(spec.params["locustfile"]).name
    m = _UNRECOGNIZED.search(output)
    if m:
        keys = [a.split("=", 1)[0] for a in m.group(1).split() if a.startswith("--")]
        opts = spec.params.get("options") or {}
        named = [f"options.{k}" for k in opts if "--llm-" + k.replace("_", "-") in keys] or keys
        return (
            f"scenario {spec.name!r}: {', '.join(named)}: not an option of {lf} "
            f"(`locust -f {lf} --help` lists the --llm-* options it accepts)"
        )
    lines = [ln.strip() for ln in output.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "locust-llm:" in ln or "error:" in ln:
            text = ln.split("locust-llm: ", 1)[-1] if "locust-llm:" in ln else ln
            return f"scenario {spec.name!r}: {text}"
    tail = lines[-1] if lines else "no output"
    return f"scenario {spec.name!r}: locust -f {lf} failed to start: {tail}"


def validate_specs(specs: Iterable[ScenarioSpec]) -> list[str]:
    """Check every scenario as its run would; one message per failing scenario. Scenarios
    with the same command line (a sweep over non-Locust keys) are checked once."""
    errors: list[str] = []
    seen: dict[tuple[str, ...], str | None] = {}
    with tempfile.TemporaryDirectory(prefix="locust-llm-validate-") as tmp:
        d = Path(tmp)
        shim = d / "_locust_plugins_shim.py"
        shim.write_text("import locust_plugins  # noqa: F401  registers -i/--ips\n")
        for spec in specs:
            argv = locust_argv(spec, PLACEHOLDER_HOST, d, shim if needs_shim(spec) else None)
            env = {**os.environ, **(spec.params.get("env") or {}), CHECK_ONLY_ENV: "1"}
            key = (
                *_shape(argv),
                *sorted(f"{k}={v}" for k, v in (spec.params.get("env") or {}).items()),
            )
            if key not in seen:
                seen[key] = _check(argv, env, d)
            output = seen[key]
            if output is not None:
                errors.append(explain(spec, output))
    return errors


def _shape(argv: list[str]) -> list[str]:
    """The command line without the load's size (users, rates, duration): spec.py has checked
    those numbers, so scenarios of a sweep over them share one check."""
    out = list(argv)
    for i, a in enumerate(out[:-1]):
        if a in _SIZE_FLAGS:
            out[i + 1] = "N"
    return out


def _check(argv: list[str], env: dict[str, str], cwd: Path) -> str | None:
    """None when the check passed, else the process's output."""
    try:
        out = subprocess.run(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"locust-llm: the option check did not finish in {CHECK_TIMEOUT_S:g}s"
    if out.returncode == 0:
        return None
    return (out.stderr or "") + (out.stdout or "") or f"exit code {out.returncode}"
