"""Start and stop the sampler process from a load test (no Locust import here either)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

log = logging.getLogger("locust_llm")


def nvml_problem() -> str | None:
    """Why NVML cannot be sampled here, in one line; None when it can."""
    from .sampler import NoGPU, open_nvml

    try:
        nvml, _ = open_nvml()
        nvml.nvmlShutdown()
    except NoGPU as e:
        return str(e)
    return None


class Sampler:
    """The sampler child: started with this process as its parent, stopped with SIGTERM."""

    def __init__(self, path: Path, proc: subprocess.Popen) -> None:
        self.path, self.proc = path, proc

    @classmethod
    def start(cls, out_dir: str | None, interval: float = 0.2) -> Sampler | None:
        """None (after one log line saying why) when there is no GPU to sample."""
        why = nvml_problem()
        if why is not None:
            log.warning("locust-llm: GPU telemetry off: %s", why)
            return None
        d = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="locust-llm-gpu-"))
        d.mkdir(parents=True, exist_ok=True)
        path = d / "gpu_telemetry.jsonl"
        path.write_text("")
        argv = [
            sys.executable, "-m", "locust_llm.telemetry.sampler", str(path),
            "--interval", f"{interval:g}", "--parent", str(os.getpid()),
        ]  # fmt: skip
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
        log.info("locust-llm: GPU telemetry every %gs -> %s (pid %d)", interval, path, proc.pid)
        return cls(path, proc)

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
