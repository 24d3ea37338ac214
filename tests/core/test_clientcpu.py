"""The load generator's wait for a CPU, read from the kernel's scheduler statistics."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from locust_llm.clientcpu import runqueue_seconds


def test_schedstat_fields_are_read_in_seconds(tmp_path):
    f = tmp_path / "schedstat"
    f.write_text("8821345123 2500000000 9912\n")
    assert runqueue_seconds(str(f)) == 2.5
    f.write_text("garbage\n")
    assert runqueue_seconds(str(f)) is None
    assert runqueue_seconds(str(tmp_path / "missing")) is None


@pytest.mark.timing
@pytest.mark.skipif(runqueue_seconds() is None, reason="kernel without scheduler statistics")
def test_a_thread_sharing_its_core_with_busy_processes_waits_for_it():
    # three spinning processes on this thread's core: it gets at most about a quarter of it,
    # so most of its own 0.6 s of spinning is spent waiting in the run queue
    core = min(os.sched_getaffinity(0))
    spin = "import time\nt = time.monotonic() + 3\nwhile time.monotonic() < t: pass"
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    hogs = [
        subprocess.Popen(
            ["taskset", "-c", str(core), sys.executable, "-c", spin],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(3)
    ]
    try:
        time.sleep(0.3)  # the hogs are running
        start = runqueue_seconds()
        t_end = time.process_time() + 0.6
        while time.process_time() < t_end:
            pass
        waited = runqueue_seconds() - start
    finally:
        os.sched_setaffinity(0, before)
        for h in hogs:
            h.kill()
            h.wait()
    assert waited > 0.6  # about 1.8 s at a fair quarter share
