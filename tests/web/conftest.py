"""A real ``locust`` web UI run (subprocess) against the built-in emulator, killed afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.runs import ROOT, free_port

LOCUSTFILE = Path(__file__).with_name("locustfile_web.py")
LOCUST = str(Path(sys.executable).with_name("locust"))


class LocustRun:
    def __init__(self, tmp: Path, extra: list[str], run_time: str, autoquit: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.summary_path = tmp / "summary.json"
        self.log_path = tmp / "locust.log"
        argv = [
            LOCUST, "-f", str(LOCUSTFILE), "--autostart", "--autoquit", str(autoquit),
            "-u", "4", "-r", "4", "-t", run_time, "--web-port", str(self.port),
            "--web-host", "127.0.0.1", "--llm-summary", str(self.summary_path),
            "--llm-slo", "ttft_p95<=800ms", "--llm-slo", "itl_p99<=1ms", *extra,
        ]  # fmt: skip
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv, cwd=tmp, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip

    def get(self, path: str, timeout: float = 5.0) -> bytes:
        with urllib.request.urlopen(self.base + path, timeout=timeout) as r:
            return r.read()

    def json(self, path: str):
        return json.loads(self.get(path))

    def wait_for(self, pred, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"locust exited early ({self.proc.returncode}): {self.log()}")
            try:
                last = pred()
                if last:
                    return last
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; last {last!r}; log:\n{self.log()}")

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        self._log.close()


@pytest.fixture()
def locust_run(tmp_path):
    runs: list[LocustRun] = []

    def start(extra: list[str] | None = None, run_time: str = "15s", autoquit: int = 5):
        r = LocustRun(tmp_path, extra or [], run_time, autoquit)
        runs.append(r)
        return r

    yield start
    for r in runs:
        r.kill()
