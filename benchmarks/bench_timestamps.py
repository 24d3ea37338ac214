"""ITL error of user-space vs kernel receive stamps, judged against the emulator's truth log.

Why: kernel stamps are meant to keep ITL true when the load generator is busy. This measures
it: the emulator logs when it wrote each token (``--emu-truth-log``, CLOCK_MONOTONIC =
perf_counter on Linux), a gevent client streams ``--streams`` paced requests through
geventhttpclient with :func:`locust_llm.timestamps.enable_kernel_timestamps` applied and
records, per token, both the user-space stamp (perf_counter at parse) and the kernel stamp;
``--burn`` adds a greenlet burning 5 ms of CPU every 10 ms in the client process. Each
client gap is compared with the emulator's gap for the same request and token pair.

    .venv/bin/python benchmarks/bench_timestamps.py --streams 64 --seconds 10 [--burn]

The emulator is pinned to CPU 0 and the client to CPU 1 when there are two. This client is a
plain gevent loop, not Locust; once ``users.py`` records per-token stamps (``TokenTimes``) the
lead can swap in a Locust run and feed its per-request records to :func:`gap_errors`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.stamps import ClientHealth, TokenTimes, percentile  # noqa: E402


def load_truth_log(path: str | os.PathLike[str]) -> dict[str, list[float]]:
    """Emulator truth log -> {request id: [write time per token chunk]} (perf_counter s).

    Format (locust_llm/emulator/truthlog.py): one JSON line per request,
    ``{"id", "t_arrival", "t_send": [...]}``; for chat the first entry is the role chunk.
    """
    out: dict[str, list[float]] = {}
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                out[rec["id"]] = list(rec["t_send"])
    return out


def gap_errors(
    client: Mapping[str, Sequence[float]],
    truth: Mapping[str, Sequence[float]],
    exclude: Mapping[str, Sequence[bool]] | None = None,
) -> dict[str, float | int]:
    """Compare client token times with the truth log, request by request (pure).

    ``client[id]`` and ``truth[id]`` list one time per token chunk in order; requests whose
    counts differ are skipped and counted (``mismatched``). The error of a gap is
    ``(c[i+1] - c[i]) - (t[i+1] - t[i])`` in ms; gaps touching a token flagged in
    ``exclude[id]`` (shared reads) are left out and counted (``excluded``). Also returns
    the arrival error ``c[i] - t[i]`` (same host, same clock), which includes the network
    path and, for user stamps, the client's lateness.
    """
    errs: list[float] = []
    arrival: list[float] = []
    excluded = mismatched = requests = 0
    for rid, c in client.items():
        t = truth.get(rid)
        if t is None or len(t) != len(c):
            mismatched += 1
            continue
        requests += 1
        flags = exclude.get(rid) if exclude is not None else None
        if flags is not None and len(flags) != len(c):
            flags = None  # no per-token flags (user mode)
        for i in range(len(c)):
            arrival.append((c[i] - t[i]) * 1000.0)
        for i in range(len(c) - 1):
            if flags is not None and (flags[i] or flags[i + 1]):
                excluded += 1
                continue
            errs.append(((c[i + 1] - c[i]) - (t[i + 1] - t[i])) * 1000.0)
    abs_errs = [abs(e) for e in errs]
    return {
        "requests": requests,
        "mismatched": mismatched,
        "gaps": len(errs),
        "excluded": excluded,
        "gap_err_p50_ms": percentile(abs_errs, 50),
        "gap_err_p99_ms": percentile(abs_errs, 99),
        "gap_err_max_ms": max(abs_errs) if abs_errs else math.nan,
        "arrival_err_p50_ms": percentile(arrival, 50),
        "arrival_err_p99_ms": percentile(arrival, 99),
    }


# --- runner ---------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _start_emulator(port: int, truth: str, args: argparse.Namespace) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "locust_llm.emulator", "m", "--host", "127.0.0.1",
        "--port", str(port), "--max-num-seqs", str(max(256, args.streams)),
        "--emu-profile", "constant", "--emu-ttft-ms", str(args.ttft_ms),
        "--emu-itl-ms", str(args.itl_ms), "--emu-itl-dist", "lognormal",
        "--emu-truth-log", truth,
    ]  # fmt: skip
    if (os.cpu_count() or 1) >= 2:
        cmd = ["taskset", "-c", "0", *cmd]
    return subprocess.Popen(
        cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def run(args: argparse.Namespace) -> dict[str, object]:
    """Run the emulator and a gevent client; return user vs kernel gap errors + health."""
    import gevent
    from geventhttpclient import HTTPClient

    from locust_llm import timestamps as ts

    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    ts.keep_timestamping_warm()
    tmp = tempfile.mkdtemp(prefix="bench_ts_")
    truth_path = os.path.join(tmp, "truth.jsonl")
    port = _free_port()
    emu = _start_emulator(port, truth_path, args)
    try:
        client = HTTPClient("127.0.0.1", port, concurrency=args.streams, network_timeout=60)
        kernel_on = False if args.user_only else ts.enable_kernel_timestamps(client)
        deadline = time.time() + 30
        while True:
            try:
                if client.get("/health").status_code == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("emulator did not become ready")
            gevent.sleep(0.1)
        body = json.dumps(
            {
                "model": "m",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": args.max_tokens,
                "ignore_eos": True,
                "stream": True,
            }
        )
        headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        user: dict[str, list[float]] = {}
        kern: dict[str, list[float]] = {}
        shared: dict[str, list[bool]] = {}
        health = ClientHealth()
        stop_at = time.perf_counter() + args.seconds

        def stream() -> None:
            while time.perf_counter() < stop_at:
                r = client.post("/v1/chat/completions", body=body, headers=headers)
                rec = TokenTimes(ts.StampReader.from_response(r))
                rid = None
                while True:
                    line = r.readline(b"\n")
                    if not line:
                        break
                    if line.startswith(b"data: {"):
                        rec.mark()
                        if rid is None:
                            rid = json.loads(line[6:])["id"]
                a = rec.analyze()
                if rid is None:
                    continue
                # no include_usage: every data event is a token chunk (role chunk first)
                user[rid] = rec.user
                kern[rid] = a.times
                shared[rid] = a.shared_flags
                health.add(a)

        def burner() -> None:
            while time.perf_counter() < stop_at:
                end = time.perf_counter() + 0.005
                while time.perf_counter() < end:
                    pass
                gevent.sleep(0.005)

        cpu0 = time.process_time()
        w0 = time.perf_counter()
        jobs = [gevent.spawn(stream) for _ in range(args.streams)]
        if args.burn:
            jobs.append(gevent.spawn(burner))
        gevent.joinall(jobs, raise_error=True)
        cpu = (time.process_time() - cpu0) / (time.perf_counter() - w0)
        client.close()
    finally:
        emu.terminate()
        emu.wait(10)
    truth = load_truth_log(truth_path)
    return {
        "streams": args.streams,
        "burn": args.burn,
        "kernel_enabled": kernel_on,
        "client_cpu": round(cpu, 3),
        "user": gap_errors(user, truth),
        "kernel_all": gap_errors(kern, truth),
        "kernel_own": gap_errors(kern, truth, shared),
        "health": health.figures(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", type=int, default=64)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--burn", action="store_true", help="burn 5 ms CPU every 10 ms in the client")
    p.add_argument("--user-only", action="store_true", help="no kernel stamps (CPU baseline)")
    p.add_argument("--ttft-ms", type=float, default=50.0)
    p.add_argument("--itl-ms", type=float, default=20.0)
    p.add_argument("--max-tokens", type=int, default=64)
    args = p.parse_args(argv)
    res = run(args)
    print(json.dumps(res, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
