"""Running ``locust`` and ``locust-llm`` as subprocesses and reading what they wrote.

One place for what many test modules do: start a command from the repository root (so
``locustfiles/...`` paths resolve and the package under test is the one imported), on
127.0.0.1 and free ports; read its ``--llm-summary`` and ``--llm-records``; tell whether a
process it started is still running.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
LOCUST = [sys.executable, "-m", "locust"]
LOCUST_LLM = [sys.executable, "-m", "locust_llm.cli"]
EMULATOR = [sys.executable, "-m", "locust_llm.emulator"]


def free_port() -> int:
    """A port nothing listens on now (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(env: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, **(env or {})}


def run_locust(
    args: list[str], timeout: float = 60, env: dict[str, str] | None = None, **kw: Any
) -> subprocess.CompletedProcess:
    """``locust ARGS`` from the repository root, output captured as text."""
    return subprocess.run(
        LOCUST + args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=_env(env),
        **kw,
    )  # fmt: skip


def run_locust_llm(
    *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``locust-llm ARGS`` (the CLI module, so no installed entry point is needed)."""
    return subprocess.run(
        LOCUST_LLM + list(args), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env=_env(env),
    )  # fmt: skip


def summary(path: Path, proc: subprocess.CompletedProcess | None = None) -> dict[str, Any]:
    """The ``--llm-summary`` a run wrote; when it wrote none, fail with the run's output."""
    tail = (proc.stdout[-1500:] + proc.stderr[-3000:]) if proc is not None else ""
    assert path.is_file(), f"no summary at {path}:\n{tail}"
    return json.loads(path.read_text())


def records(path: Path) -> list[dict[str, Any]]:
    """Every line of a records file parsed; fails on a torn or invalid line."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "records file ends with a torn line"
    return [json.loads(line) for line in data.splitlines()]


def alive(pid: int) -> bool:
    """Exists and is not a zombie (a zombie holds no port, GPU or file)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@contextmanager
def emulator(*args: str, model: str = "m") -> Iterator[str]:
    """A fresh emulator subprocess on a free port; yields its base URL, reaps it after."""
    path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
    p = subprocess.Popen(
        [*EMULATOR, model, "--port", "0", *args], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, env=_env({"PYTHONPATH": path}),
    )  # fmt: skip
    try:
        line = p.stdout.readline() if p.stdout is not None else ""
        m = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert m, f"emulator did not start: {line!r}"
        yield m.group(0)
    finally:
        p.kill()
        p.wait()
