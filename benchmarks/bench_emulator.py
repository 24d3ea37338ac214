"""Emulator emission ceiling: tokens/s one emulator core writes when the client reads at once.

Usage: ``python benchmarks/bench_emulator.py [--streams 4] [--seconds 5] [--emu-core 0]
[--client-core 1]``. The emulator runs with ``--emu-ttft-ms 0 --emu-itl-ms 0`` (every token due
at once, so it packs up to ``--emu-write-bytes`` of SSE events into each send) pinned with
``taskset -c EMU_CORE``; this process pins itself to CLIENT_CORE and counts SSE events with raw
sockets (no HTTP library, no JSON): the figure is the emulator's, not the reader's.
Importable: ``measure(streams, seconds) -> dict``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

import gevent
from gevent import socket

TOKENS_PER_REQUEST = 100_000


def _start_emulator(core: int | None) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "locust_llm.emulator", "--port", "0", "--emu-ttft-ms", "0", "--emu-itl-ms", "0",
           "--max-model-len", "10M"]  # fmt: skip
    if core is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(core), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline()
    return proc, int(line.rsplit(":", 1)[1])


def _stream(port: int, stop_at: float, counter: list[int]) -> None:
    body = (
        b'{"prompt":"bench","max_tokens":%d,"ignore_eos":true,"stream":true}' % TOKENS_PER_REQUEST
    )
    req = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s") % (len(body), body)  # fmt: skip
    s = socket.create_connection(("127.0.0.1", port))
    try:
        while time.perf_counter() < stop_at:
            s.sendall(req)
            tail = b""
            while True:
                d = s.recv(262144)
                if not d:
                    return
                counter[0] += (tail[-1:] + d).count(b"\n\n")
                tail = (tail + d)[-64:]
                if tail.endswith(b"0\r\n\r\n") and b"[DONE]" in tail:
                    break
    finally:
        s.close()


def measure(
    streams: int = 4, seconds: float = 5.0, emu_core: int | None = 0, client_core: int | None = 1
) -> dict:
    """Run the measurement; returns ``{"tokens_per_s", "streams", "seconds"}``."""
    if client_core is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {client_core})
        except OSError:
            pass
    proc, port = _start_emulator(emu_core)
    try:
        counter = [0]
        warm = time.perf_counter() + 0.5
        gevent.joinall([gevent.spawn(_stream, port, warm, [0]) for _ in range(streams)])
        t0 = time.perf_counter()
        stop_at = t0 + seconds
        jobs = [gevent.spawn(_stream, port, stop_at, counter) for _ in range(streams)]
        gevent.joinall(jobs)
        elapsed = time.perf_counter() - t0
        # subtract non-token events: per request, [DONE] (completions have no role chunk)
        return {"tokens_per_s": counter[0] / elapsed, "streams": streams, "seconds": elapsed}
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--emu-core", type=int, default=0)
    p.add_argument("--client-core", type=int, default=1)
    a = p.parse_args(argv)
    r = measure(a.streams, a.seconds, a.emu_core, a.client_core)
    print(f"emulator emission ceiling: {r['tokens_per_s']:,.0f} tokens/s "
          f"(1 core, {r['streams']} streams, {r['seconds']:.1f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
