"""Fixtures: the emulator as a real subprocess on a free port, always killed afterwards."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

READY = re.compile(r"^locust-llm emulator: serving (\S+) on (http://\S+:(\d+))$")


class Emulator:
    def __init__(self, args: list[str], env: dict | None = None) -> None:
        cmd = [sys.executable, "-m", "locust_llm.emulator", "--port", "0", *args]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        line = self.proc.stdout.readline().rstrip("\n")
        m = READY.match(line)
        if not m:
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.kill()
            raise RuntimeError(f"no ready line: {line!r} {err}")
        self.model, self.url, self.port = m.group(1), m.group(2), int(m.group(3))
        self.ready_line = line

    def stderr_text(self) -> str:
        self.kill()
        return self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)

    def terminate_timed(self) -> float:
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(5)
        return time.monotonic() - t


@pytest.fixture
def emulator():
    """Factory: ``emulator(*args, env=...)`` starts one; all are killed at teardown."""
    started: list[Emulator] = []

    def start(*args: str, env: dict | None = None) -> Emulator:
        e = Emulator(list(args), env)
        started.append(e)
        return e

    yield start
    for e in started:
        e.kill()
