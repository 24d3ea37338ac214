"""Child processes that cannot outlive us: own process group, parent-death signal, log file.

`spawn` starts a process in its own process group (so `os.killpg` reaches everything it
forks: vLLM's engine-core workers, nginx's workers) and sets `prctl(PR_SET_PDEATHSIG)` in the
child, so the kernel signals it when we die, even by SIGKILL.

Own group, not own session: Linux's scheduler autogroups (on by default) put each session in
a group that competes as one entity for CPU time. A server in a session of its own then
outranks the load generator on a small host: with vLLM on 2 cores, Locust's main thread
spent 29 of 34 s waiting in the run queue (0.7 s on a CPU), so finished streams were read up
to 1 s late; in our session, 1.3 of 13 s. The process group keeps what the session gave: a
terminal's Ctrl-C reaches only the foreground group (us), never the servers directly.

Caveat: the kernel fires PDEATHSIG when the *thread* that forked the child exits, not the
process; `Stack` therefore spawns from the calling thread, and callers should start stacks
from the main thread (or a thread that lives as long as the stack). Under gevent all greenlets share the main thread, so Locust is fine.

The death signal is per process: SIGKILL for single-process servers (the emulator), SIGTERM
for process trees that must clean up their own children (nginx's master stops its workers;
`vllm serve` shuts its engine cores down and frees the GPUs): a SIGKILLed parent would leave
those grandchildren running, because PDEATHSIG does not reach them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1
_libc = None
if os.uname().sysname == "Linux":
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        _libc = None


def _preexec(death_signal: int, parent: int):
    def fn() -> None:  # runs in the child between fork and exec: keep it tiny
        os.setpgid(0, 0)
        if _libc is not None:
            _libc.prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent:  # parent died before prctl took effect
            os._exit(1)

    return fn


def spawn(
    argv: Sequence[str],
    *,
    log_path: str | os.PathLike,
    env: Mapping[str, str] | None = None,
    death_signal: int = signal.SIGKILL,
    cwd: str | os.PathLike | None = None,
) -> subprocess.Popen:
    """Start `argv` with stdout+stderr appended to `log_path`; `env` is added to ours."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            preexec_fn=_preexec(int(death_signal), os.getpid()),
        )


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the whole process group of `proc` (its pid: it leads its own group)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stop_all(
    procs: Sequence[subprocess.Popen], first: int = signal.SIGTERM, grace_s: float = 10.0
) -> None:
    """`first` to every group at once, wait up to `grace_s` for all, then SIGKILL the rest."""
    for p in procs:
        signal_group(p, first)
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in procs:
        if p.poll() is None or group_alive(p.pid):
            signal_group(p, signal.SIGKILL)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        # grandchildren left in the group after the leader exited
        t_end = time.monotonic() + 2
        while group_alive(p.pid) and time.monotonic() < t_end:
            signal_group(p, signal.SIGKILL)
            time.sleep(0.02)


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port (or we may not bind it)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
        return False
    except OSError as e:
        return e.errno in (errno.EADDRINUSE, errno.EACCES)
    finally:
        s.close()


def tail(path: str | os.PathLike | None, n: int = 20) -> str:
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-n:])
