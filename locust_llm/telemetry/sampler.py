"""`python -m locust_llm.telemetry.sampler OUT.jsonl [--interval 0.2]`: sample NVML per GPU.

One JSON line per GPU per tick: ``t`` (epoch s), ``gpu`` (index), ``uuid``, ``util`` (%),
``mem_used_mib``, ``power_w``, ``energy_mj`` (the driver's total-energy counter, monotonic),
``sm_clock_mhz``. Runs until SIGTERM/SIGINT or until its parent dies (it checks its parent
every tick, and asks the kernel for SIGTERM at the parent's death where prctl exists), so a
load test killed with SIGKILL leaves no sampler behind.

Without NVML (no `nvidia-ml-py`, no driver, no GPU) it prints one line saying so on stderr
and exits with status 3: the caller reports "GPU telemetry off" and the run goes on.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

EXIT_NO_GPU = 3


class NoGPU(RuntimeError):
    """NVML is not usable here; the message says why, in one line."""


def open_nvml() -> tuple[Any, list[Any]]:
    """(pynvml module, handles of every GPU). Raises NoGPU."""
    try:
        import pynvml
    except ImportError:
        raise NoGPU("nvidia-ml-py is not installed (pip install 'locust-llm[gpu]')") from None
    try:
        pynvml.nvmlInit()
        n = pynvml.nvmlDeviceGetCount()
    except pynvml.NVMLError as e:
        raise NoGPU(f"NVML unavailable: {e} (no NVIDIA driver or GPU here)") from None
    if n == 0:
        raise NoGPU("NVML found no GPU")
    return pynvml, [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(n)]


def _try(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:  # one counter unsupported on this GPU: that field is null
        return None


def sample(nvml: Any, handles: list[Any], uuids: list[str]) -> list[dict[str, Any]]:
    """One reading of every GPU (each field null when this GPU does not support it)."""
    t = time.time()
    rows = []
    for i, h in enumerate(handles):
        util = _try(nvml.nvmlDeviceGetUtilizationRates, h)
        mem = _try(nvml.nvmlDeviceGetMemoryInfo, h)
        power = _try(nvml.nvmlDeviceGetPowerUsage, h)
        rows.append(
            {
                "t": t,
                "gpu": i,
                "uuid": uuids[i],
                "util": None if util is None else util.gpu,
                "mem_used_mib": None if mem is None else mem.used / 2**20,
                "power_w": None if power is None else power / 1000.0,
                "energy_mj": _try(nvml.nvmlDeviceGetTotalEnergyConsumption, h),
                "sm_clock_mhz": _try(nvml.nvmlDeviceGetClockInfo, h, nvml.NVML_CLOCK_SM),
            }
        )
    return rows


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run(path: str, interval: float, parent: int | None, duration: float | None = None) -> int:
    try:
        nvml, handles = open_nvml()
    except NoGPU as e:
        print(f"locust-llm: GPU telemetry off: {e}", file=sys.stderr, flush=True)
        return EXIT_NO_GPU
    uuids = [str(_try(nvml.nvmlDeviceGetUUID, h)) for h in handles]
    stop = False

    def _stop(*_a: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    t_end = time.monotonic() + duration if duration else None
    print(f"locust-llm: GPU telemetry: {len(handles)} GPU(s) every {interval:g}s", file=sys.stderr)
    with open(path, "a", buffering=1) as out:
        nxt = time.monotonic()
        while not stop:
            for row in sample(nvml, handles, uuids):
                out.write(json.dumps(row) + "\n")
            if parent is not None and os.getppid() != parent:
                break
            if t_end is not None and time.monotonic() >= t_end:
                break
            nxt += interval
            time.sleep(max(0.0, nxt - time.monotonic()))
    try:
        nvml.nvmlShutdown()
    except Exception:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m locust_llm.telemetry.sampler")
    p.add_argument("out", help="JSONL file to append samples to")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between samples (0.2)")
    p.add_argument("--parent", type=int, default=None, help="exit when this pid is gone")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    a = p.parse_args(argv)
    if not 0.05 <= a.interval <= 5:
        p.error("--interval: between 0.05 and 5 seconds (0.1-0.5 is the useful range)")
    if a.parent is not None:
        _die_with_parent()
    return run(a.out, a.interval, a.parent, a.duration)


if __name__ == "__main__":
    sys.exit(main())
