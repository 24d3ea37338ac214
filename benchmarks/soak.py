"""Soak: 1000 concurrent streaming users for N minutes in ONE Locust process, against the emulator.

    .venv/bin/python benchmarks/soak.py --minutes 10          # the issue's figure
    .venv/bin/python benchmarks/soak.py --minutes 3 --json reports/soak.json

The emulator is pinned to core 0 and Locust to core 1 (``taskset``, when there are >= 2
cores). The emulator injects faults at ``--fault-rate`` (HTTP 503 and mid-stream errors, both
with "(emulated fault)" in their message), so the run can tell the errors the server was told
to produce from any other error (client bugs, lost connections, fd exhaustion): the latter
must be zero. Every ``--sample-s`` seconds the RSS and open file descriptors of the Locust
process are sampled (psutil). Printed: peak RSS, RSS growth after the first minute (last
sample vs the first sample at >= 60 s, and the max after 60 s vs that sample), fd growth,
output tokens/s (from the LLM summary), and the error breakdown.

Pass criteria (a soak that leaks fails them): RSS growth < 10 % after the first minute, fd growth <= a few
(connection churn), zero errors not injected by the emulator.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _pin(core: int) -> list[str]:
    if (os.cpu_count() or 1) >= 2 and subprocess.run(
        ["which", "taskset"], capture_output=True
    ).returncode == 0:
        return ["taskset", "-c", str(core)]
    return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--spawn-rate", type=float, default=200.0)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--ttft-ms", type=float, default=100.0)
    ap.add_argument("--itl-ms", type=float, default=40.0)
    ap.add_argument("--fault-rate", type=float, default=0.005)
    ap.add_argument("--sample-s", type=float, default=10.0)
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="locust-llm-soak-"))
    emu_cmd = [*_pin(0), PY, "-m", "locust_llm.emulator", "m", "--port", "0",
               "--max-num-seqs", str(args.users * 2), "--emu-ttft-ms", str(args.ttft_ms),
               "--emu-itl-ms", str(args.itl_ms), "--emu-eos-prob", "0",
               "--emu-fault-rate", str(args.fault_rate), "--emu-fault-types", "503,midstream"]  # fmt: skip
    emu = subprocess.Popen(
        emu_cmd, stdout=subprocess.PIPE, stderr=open(work / "emu.err", "w"), text=True
    )
    loc = None
    try:
        m = re.search(r"http://127\.0\.0\.1:\d+", emu.stdout.readline())
        if not m:
            raise SystemExit(f"emulator did not start; see {work / 'emu.err'}")
        host = m.group(0)
        summary = work / "summary.json"
        run_s = int(args.minutes * 60)
        loc_cmd = [*_pin(1), PY, "-m", "locust", "-f", "locustfiles/chat.py", "--headless",
                   "--host", host, "--llm-model", "m", "-u", str(args.users),
                   "-r", str(args.spawn_rate), "-t", f"{run_s}s", "--only-summary",
                   "--llm-max-tokens", str(args.max_tokens), "--llm-ignore-eos",
                   "--llm-summary", str(summary), "--stop-timeout", "0"]  # fmt: skip
        out = open(work / "locust.out", "w")
        loc = subprocess.Popen(loc_cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        proc = psutil.Process(loc.pid)
        if _pin(1):  # the process to sample is the child of taskset (it execs: same pid)
            pass
        t0 = time.monotonic()
        samples: list[tuple[float, int, int]] = []
        while loc.poll() is None:
            try:
                samples.append((time.monotonic() - t0, proc.memory_info().rss, proc.num_fds()))
            except psutil.Error:
                break
            print(
                f"t={samples[-1][0]:6.0f}s rss={samples[-1][1] / 2**20:7.1f} MiB fds={samples[-1][2]}",
                flush=True,
            )
            deadline = time.monotonic() + args.sample_s
            while loc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
        rc = loc.wait()
    finally:
        if loc is not None and loc.poll() is None:
            loc.kill()
        emu.terminate()
        emu.wait(timeout=10)

    s = json.loads(summary.read_text())
    errors: dict[str, int] = s.get("errors") or {}
    injected = {k: v for k, v in errors.items() if "emulated fault" in k}
    aborted = {k: v for k, v in errors.items() if k.startswith("aborted")}
    other = {k: v for k, v in errors.items() if k not in injected and k not in aborted}
    after = [x for x in samples if x[0] >= 60.0]
    base = after[0] if after else samples[0]
    peak_rss = max(x[1] for x in samples)
    fig = {
        "command": "python benchmarks/soak.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "users": args.users,
        "minutes": args.minutes,
        "locust_exit_code": rc,
        "samples": len(samples),
        "peak_rss_mib": round(peak_rss / 2**20, 1),
        "rss_at_60s_mib": round(base[1] / 2**20, 1),
        "rss_end_mib": round(samples[-1][1] / 2**20, 1),
        "rss_growth_after_1min_pct": round(100.0 * (samples[-1][1] - base[1]) / base[1], 2),
        "rss_max_growth_after_1min_pct": round(
            100.0 * (max(x[1] for x in after or samples) - base[1]) / base[1], 2
        ),
        "fds_at_60s": base[2],
        "fds_end": samples[-1][2],
        "fd_growth": samples[-1][2] - base[2],
        "fds_max": max(x[2] for x in samples),
        "completed": s["completed"],
        "failed": s["failed"],
        "aborted": s.get("aborted"),
        "output_tokens_per_s": round(s["output_throughput"], 1),
        "peak_output_tokens_per_s": s.get("max_output_tokens_per_s"),
        "max_concurrent_requests": s.get("max_concurrent_requests"),
        "p50_ttft_ms": s.get("p50_ttft_ms"),
        "p99_itl_ms": s.get("p99_itl_ms"),
        "errors_injected": sum(injected.values()),
        "errors_not_injected": sum(other.values()),
        "errors_not_injected_detail": other,
        "aborted_at_stop": sum(aborted.values()),
        "work_dir": str(work),
    }
    print(json.dumps(fig, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(fig, indent=2))
    ok = fig["rss_growth_after_1min_pct"] < 10 and fig["errors_not_injected"] == 0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
