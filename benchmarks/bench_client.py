"""Client benchmarks: ingest ceiling and paced-stream precision of one Locust process.

    .venv/bin/python benchmarks/bench_client.py ingest [--users 1,16,64,256] [--seconds 10]
    .venv/bin/python benchmarks/bench_client.py paced [--users 256] [--seconds 20]

The emulator runs pinned to core 0 (``taskset -c 0``), Locust to core 1, both on loopback.

* ingest: the emulator writes as fast as the client reads (``--emu-ttft-ms 0 --emu-itl-ms 0``:
  every token due at once, many SSE events per send). Reports output tokens/s one Locust process
  consumes through the full metrics path, beside a bare FastHttpUser loop that only timestamps
  lines (``locustfile_bare.py``), measured in the same run: their ratio is our overhead.
* paced: TTFT 50 ms, ITL 20 ms, so nearly every token arrives in its own read. Reports CPU µs
  per token of the Locust process (process time between test start and stop / tokens) and the
  error of each measured ITL gap against the emulator's own write log (``--emu-truth-log``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _pin(core: int | None, cmd: list[str]) -> list[str]:
    if core is not None and shutil.which("taskset") and (os.cpu_count() or 1) > core:
        return ["taskset", "-c", str(core), *cmd]
    return cmd


def start_emulator(args: list[str], core: int | None = 0) -> tuple[subprocess.Popen, str]:
    cmd = _pin(
        core, [PY, "-m", "locust_llm.emulator", "--port", "0", "--max-model-len", "1M", *args]
    )
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, start_new_session=True)  # fmt: skip
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if "serving" not in line:
        proc.kill()
        raise RuntimeError(f"emulator did not start: {line!r}")
    return proc, line.rsplit(" on ", 1)[1].strip()


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_locust(locustfile: str, host: str, users: int, seconds: float, out: Path,
               extra: list[str], core: int | None = 1, env: dict | None = None) -> dict:  # fmt: skip
    cmd = _pin(core, [PY, "-m", "locust", "-f", locustfile, "--headless", "-u", str(users),
                      "-r", str(max(users, 1) * 10), "-t", f"{int(seconds)}s", "--host", host,
                      "--only-summary", "--stop-timeout", "0", *extra])  # fmt: skip
    e = {**os.environ, "BENCH_OUT": str(out), **(env or {})}
    p = subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True, timeout=seconds + 120)
    if not out.exists():
        raise RuntimeError(f"locust run failed ({p.returncode}): {p.stderr[-2000:]}")
    return json.loads(out.read_text())


VLLM_PY = ROOT / ".venv-vllm" / "bin" / "python"


def run_vllm_client(host: str, users: int, seconds: float, max_tokens: int,
                    core: int | None = 1) -> dict | None:  # fmt: skip
    """vLLM's own request function in a closed loop (``vllm_client.py``), or None without vLLM."""
    if not VLLM_PY.exists():
        return None
    cmd = _pin(core, [str(VLLM_PY), "benchmarks/vllm_client.py", "--url", host, "--users",
                      str(users), "--seconds", str(seconds), "--max-tokens", str(max_tokens)])  # fmt: skip
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 300)
    if p.returncode != 0:
        raise RuntimeError(f"vllm_client failed ({p.returncode}): {p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _ratio(a: float, b: float | None) -> float | None:
    return round(a / b, 3) if b else None


def ingest(
    users_list: list[int], seconds: float, max_tokens: int = 1024, timestamps: str = "auto",
    vllm: bool = True,
) -> list[dict]:  # fmt: skip
    """Tokens/s of locust-llm beside three references, each user count in one run: ``bare``
    (timestamps lines only), ``plain`` (readline + orjson per event + perf_counter per token:
    the hand-written Locust loop) and ``vllm`` (vLLM's benchmark client on aiohttp)."""
    emu, host = start_emulator(["--emu-ttft-ms", "0", "--emu-itl-ms", "0"])
    rows = []
    env = {"BENCH_MAX_TOKENS": str(max_tokens)}
    try:
        with tempfile.TemporaryDirectory() as td:
            tmp = Path(td)
            for users in users_list:
                bare = run_locust("benchmarks/locustfile_bare.py", host, users, seconds,
                                  tmp / f"bare{users}.json", [], env=env)  # fmt: skip
                plain = run_locust("benchmarks/locustfile_plain.py", host, users, seconds,
                                   tmp / f"plain{users}.json", [], env=env)  # fmt: skip
                full_out = tmp / f"full{users}.json"
                summary = tmp / f"sum{users}.json"
                full = run_locust("benchmarks/locustfile_bench.py", host, users, seconds, full_out,
                                  ["--llm-max-tokens", str(max_tokens), "--llm-ignore-eos",
                                   "--llm-prompt-tokens", "16", "--llm-summary", str(summary),
                                   "--llm-timestamps", timestamps])  # fmt: skip
                ref = run_vllm_client(host, users, seconds, max_tokens) if vllm else None
                s = json.loads(summary.read_text())
                full_rate = full["tokens"] / full["wall_s"]
                bare_rate = bare["lines"] / bare["wall_s"]
                plain_rate = plain["tokens"] / plain["wall_s"]
                vllm_rate = ref["tokens"] / ref["wall_s"] if ref else None
                rows.append({
                    "users": users,
                    "timestamps": s.get("timestamps"),
                    "tokens_per_s": round(full_rate),
                    "bare_tokens_per_s": round(bare_rate),
                    "plain_tokens_per_s": round(plain_rate),
                    "vllm_tokens_per_s": round(vllm_rate) if vllm_rate else None,
                    "ratio_to_bare": _ratio(full_rate, bare_rate),
                    "ratio_to_plain": _ratio(full_rate, plain_rate),
                    "ratio_to_vllm": _ratio(full_rate, vllm_rate),
                    "cpu_us_per_token": round(full["cpu_s"] / max(full["tokens"], 1) * 1e6, 2),
                    "plain_cpu_us_per_token": round(plain["cpu_s"] / max(plain["tokens"], 1) * 1e6, 2),
                    "vllm_cpu_us_per_token": round(ref["cpu_s"] / max(ref["tokens"], 1) * 1e6, 2) if ref else None,
                    "client_cpu_share": round(full["cpu_s"] / full["wall_s"], 3),
                    "failed": s["failed"],
                })  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    finally:
        stop(emu)
    return rows


def _n(x: float | None) -> str:
    return "–" if x is None else f"{x:,}"


def table(rows: list[dict]) -> str:
    """The ingest rows as one markdown table (tokens/s, and locust-llm's ratio to each)."""
    out = ["| streams | locust-llm tok/s | bare | plain orjson loop | vLLM client | "
           "× plain | × vLLM | µs/token (ours / plain / vLLM) |",
           "|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for r in rows:
        out.append(f"| {r['users']} | {r['tokens_per_s']:,} | {r['bare_tokens_per_s']:,} | "
                   f"{r['plain_tokens_per_s']:,} | {_n(r['vllm_tokens_per_s'])} | "
                   f"{r['ratio_to_plain']} | {r['ratio_to_vllm'] or '–'} | "
                   f"{r['cpu_us_per_token']} / {r['plain_cpu_us_per_token']} / "
                   f"{r['vllm_cpu_us_per_token'] or '–'} |")  # fmt: skip
    return "\n".join(out)


#: A reference time is certain when the emulator's write returned within this many seconds of
#: the time it logged before it (``t_send``..``t_written``); a wider window means the host
#: paused the emulator around that write, and the token's true send time is unknown.
CERTAIN_WINDOW_S = 20e-6


def _windows(truth: Path) -> dict[str, list[bool]]:
    """Per request, per token: the emulator's write window was wider than the limit."""
    out: dict[str, list[bool]] = {}
    for line in truth.read_text().splitlines():
        rec = json.loads(line)
        sent, done = rec["t_send"], rec.get("t_written") or []
        out[rec["id"]] = [i >= len(done) or done[i] - t > CERTAIN_WINDOW_S
                          for i, t in enumerate(sent)]  # fmt: skip
    return out


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None or x != x else round(x, digits)


def _tx_refs(truth: Path) -> tuple[dict[str, list[float]], dict[str, list[bool]]]:
    """Per request: the kernel's transmit stamp of each token's write (``t_tx``; 0.0 where
    the kernel gave none) and which tokens had none."""
    refs: dict[str, list[float]] = {}
    missing: dict[str, list[bool]] = {}
    for line in truth.read_text().splitlines():
        rec = json.loads(line)
        tx = rec.get("t_tx")
        if tx is not None and len(tx) == len(rec["t_send"]):
            refs[rec["id"]] = [t or 0.0 for t in tx]
            missing[rec["id"]] = [t is None for t in tx]
    return refs, missing


def itl_errors(records: Path, truth: Path) -> tuple[dict, dict, dict, dict]:
    """Gap errors of every matched request against the emulator's write log: all gaps; only
    gaps whose tokens each had their own kernel stamp (those kept for ITL percentiles); of
    those, the gaps whose reference times are certain (see ``CERTAIN_WINDOW_S``); and the
    same own-stamp gaps against the kernel's transmit stamps of the writes (kernel on both
    sides: the client's error alone, whatever paused the emulator around its writes).
    Uses bench_timestamps' comparison; client times are rebuilt from each record's gaps."""
    from bench_timestamps import gap_errors, load_truth_log

    sent = load_truth_log(truth)
    wide = _windows(truth)
    tx, no_tx = _tx_refs(truth)
    tx_excluded: dict[str, list[bool]] = {}
    client: dict[str, list[float]] = {}
    shared: dict[str, list[bool]] = {}
    uncertain: dict[str, list[bool]] = {}
    for line in records.read_text().splitlines():
        r = json.loads(line)
        if r["error"] is not None or r["id"] not in sent:
            continue
        t = np.concatenate([[0.0], np.cumsum(r["itl"]) / 1000.0]).tolist()
        client[r["id"]] = t
        flags = [False] * len(t)
        for i in r.get("shared") or []:
            flags[i] = True
        shared[r["id"]] = flags
        w = wide.get(r["id"]) or []
        if len(w) == len(flags):
            uncertain[r["id"]] = [a or b for a, b in zip(flags, w, strict=True)]
        m = no_tx.get(r["id"]) or []
        if len(m) == len(flags):
            tx_excluded[r["id"]] = [a or b for a, b in zip(flags, m, strict=True)]
    return (
        gap_errors(client, sent),
        gap_errors(client, sent, shared),
        gap_errors({k: client[k] for k in uncertain}, sent, uncertain),
        gap_errors({k: client[k] for k in tx_excluded}, tx, tx_excluded),
    )


def shared_reads(records: Path, truth: Path) -> dict[str, float | None]:
    """Which shared reads were the client's doing. Token i shares its read with token i+1
    either because the server wrote both in one send (the emulator's first chunk carries the
    role and the first token; a late emulator writes every due token at once): no client
    can read those apart; or because the client read the socket after both had arrived,
    the client falling behind. Returns the share of token pairs each accounts for, the
    client's counted only over pairs the server wrote apart."""
    from bench_timestamps import load_truth_log

    sent = load_truth_log(truth)
    pairs = joined = apart = late = 0
    for line in records.read_text().splitlines():
        r = json.loads(line)
        t = sent.get(r["id"])
        if r["error"] is not None or t is None or len(t) != len(r["itl"]) + 1:
            continue
        flags = set(r.get("shared") or [])
        for i in range(len(t) - 1):
            pairs += 1
            if t[i + 1] - t[i] < 1e-6:  # one write: the same write time
                joined += 1
            else:
                apart += 1
                late += i in flags
    return {
        "server_joined_share": round(joined / pairs, 4) if pairs else None,
        "client_shared_share": round(late / apart, 4) if apart else None,
    }


def paced(
    users: int,
    seconds: float,
    ttft: float = 50,
    itl: float = 20,
    max_tokens: int = 64,
    timestamps: str = "auto",
    burn: bool = False,
    itl_cv: float = 0.0,
    rounds: int = 3,
) -> dict:
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        truth = tmp / "truth.jsonl"
        jitter = ["--emu-itl-dist", "lognormal", "--emu-itl-cv", str(itl_cv)] if itl_cv else []
        emu, host = start_emulator(["--emu-ttft-ms", str(ttft), "--emu-itl-ms", str(itl),
                                    "--emu-truth-log", str(truth), *jitter])  # fmt: skip
        full = {"tokens": 0, "cpu_s": 0.0, "wall_s": 0.0}
        plain = dict(full)
        records = tmp / "rec.jsonl"
        try:
            # alternating rounds: the host's speed drifts over a minute, and the ratio is
            # only meaningful between runs that saw the same host
            for k in range(rounds):
                summary = tmp / f"sum{k}.json"
                one = run_locust("benchmarks/locustfile_bench.py", host, users, seconds,
                                 tmp / f"cpu{k}.json",
                                 ["--llm-max-tokens", str(max_tokens), "--llm-ignore-eos",
                                  "--llm-records", str(records), "--llm-summary", str(summary),
                                  "--llm-timestamps", timestamps],
                                 env={"BENCH_BURN": "1" if burn else "0"})  # fmt: skip
                # the plain orjson loop against the same emulator: the CPU per token to be
                # held to
                ref = run_locust("benchmarks/locustfile_plain.py", host, users, seconds,
                                 tmp / f"plain{k}.json", [],
                                 env={"BENCH_MAX_TOKENS": str(max_tokens)})  # fmt: skip
                for acc, r in ((full, one), (plain, ref)):
                    for key in acc:
                        acc[key] += r[key]
        finally:
            stop(emu)  # flushes the truth log
        s = json.loads(summary.read_text())
        every, own, certain, kernel_ref = itl_errors(records, truth)
        split = shared_reads(records, truth)
        row = {
            "users": users,
            "timestamps": s.get("timestamps"),
            "burn": burn,
            "tokens_per_s": round(s["output_throughput"]),
            # token chunks both loops received (role chunk and streams cut off at the end
            # included): the same count on both sides of the ratio
            "rounds": rounds,
            "cpu_us_per_token": round(full["cpu_s"] / max(full["tokens"], 1) * 1e6, 2),
            "plain_cpu_us_per_token": round(plain["cpu_s"] / max(plain["tokens"], 1) * 1e6, 2),
            "cpu_ratio_to_plain": round(
                full["cpu_s"] / max(full["tokens"], 1) / (plain["cpu_s"] / max(plain["tokens"], 1)),
                3,
            ),
            "client_cpu_share": round(full["cpu_s"] / full["wall_s"], 3),
            "shared_gap_share": round(1 - own["gaps"] / every["gaps"], 4)
            if every["gaps"]
            else None,
            **split,
            "gaps_matched": every["gaps"],
            "itl_error_p50_ms": round(every["gap_err_p50_ms"], 4),
            "itl_error_p99_ms": round(every["gap_err_p99_ms"], 4),
            "itl_error_max_ms": round(every["gap_err_max_ms"], 3),
            "own_gaps": own["gaps"],
            "own_itl_error_p50_ms": round(own["gap_err_p50_ms"], 4),
            "own_itl_error_p99_ms": round(own["gap_err_p99_ms"], 4),
            # own-stamp gaps whose reference is certain: the client's error alone
            "certain_gaps": certain["gaps"],
            "certain_itl_error_p50_ms": round(certain["gap_err_p50_ms"], 4),
            "certain_itl_error_p99_ms": round(certain["gap_err_p99_ms"], 4),
            # own-stamp gaps against the kernel's transmit stamps of the emulator's writes
            "tx_ref_gaps": kernel_ref["gaps"],
            "tx_ref_itl_error_p50_ms": _round(kernel_ref["gap_err_p50_ms"], 4),
            "tx_ref_itl_error_p99_ms": _round(kernel_ref["gap_err_p99_ms"], 4),
            "client_own_stamp": s.get("client_own_stamp"),
            "client_bound": s.get("client_bound"),
            "p99_read_lateness_ms": s.get("p99_read_lateness_ms"),
            "median_itl_ms": round(s["median_itl_ms"], 3),
            "failed": s["failed"],
        }
        print(json.dumps(row), flush=True)
        return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("mode", choices=["ingest", "paced"])
    ap.add_argument("--users", default=None, help="comma-separated user counts")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--timestamps", choices=["auto", "kernel", "user"], default="auto")
    ap.add_argument("--no-vllm", action="store_true", help="ingest: skip vLLM's client")
    ap.add_argument("--burn", action="store_true", help="a greenlet burns 5 ms of every 10 ms")
    ap.add_argument("--itl-cv", type=float, default=0.0, help="lognormal ITL jitter (CV)")
    ap.add_argument("--rounds", type=int, default=3, help="paced: alternating runs of each loop")
    a = ap.parse_args(argv)
    started = time.time()
    if a.mode == "ingest":
        users = [int(x) for x in (a.users or "1,16,64,256").split(",")]
        rows = ingest(users, a.seconds or 10, timestamps=a.timestamps, vllm=not a.no_vllm)
        print(table(rows), flush=True)
        # the emulator must never be the bottleneck: its one-core emission ceiling as a
        # ratio to one Locust process's ingest ceiling, measured in this same run
        p = subprocess.run([PY, "benchmarks/bench_emulator.py", "--seconds", "5"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
        emu = float(p.stdout.split(":")[1].split("tokens/s")[0].replace(",", ""))
        best = max(r["tokens_per_s"] for r in rows)
        print(json.dumps({"emulator_tokens_per_s": round(emu), "locust_ingest_ceiling": best,
                          "emulator_to_locust_ratio": round(emu / best, 2)}), flush=True)  # fmt: skip
    else:
        for u in [int(x) for x in (a.users or "256").split(",")]:
            paced(u, a.seconds or 8, timestamps=a.timestamps, burn=a.burn, itl_cv=a.itl_cv,
                  rounds=a.rounds)  # fmt: skip
    print(f"# {a.mode} done in {time.time() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
