"""The load generator's own use of the CPU: time on a core, and time spent waiting for one.

CPU time alone cannot tell an idle client from a starved one: a process the scheduler keeps
in the run queue uses little CPU and still reads every token late. Linux counts that wait per
thread (``/proc/<pid>/schedstat``, second field, in ns); Locust runs every user on the main
thread, and ``/proc/self/schedstat`` is the main thread's, so it is the wait that delays the
token reads.
"""

from __future__ import annotations

import time

__all__ = ["SCHEDSTAT", "cpu_seconds", "runqueue_seconds"]

SCHEDSTAT = "/proc/self/schedstat"


def cpu_seconds() -> float:
    """CPU time of this process (all threads), as ``time.process_time``."""
    return time.process_time()


def runqueue_seconds(path: str = SCHEDSTAT) -> float | None:
    """Seconds the main thread has waited, runnable, for a CPU; None where the kernel does not
    say (not Linux, or a kernel without scheduler statistics)."""
    try:
        with open(path, "rb") as f:
            fields = f.read().split()
        return int(fields[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None
