"""Synthetic scenario directories with a known shape, written in the documented formats.

Only what the report reads is generated: summary.json (vLLM field names, intervals, slo,
meta), records.jsonl (ms), scenario.json, server_metrics.jsonl, events.jsonl.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

T0 = 1_763_790_000.0


def _stats(prefix: str, x: np.ndarray) -> dict[str, float]:
    if len(x) == 0:
        return {}
    out = {
        f"mean_{prefix}_ms": float(np.mean(x)),
        f"median_{prefix}_ms": float(np.median(x)),
        f"std_{prefix}_ms": float(np.std(x)),
        f"min_{prefix}_ms": float(np.min(x)),
        f"max_{prefix}_ms": float(np.max(x)),
    }
    for q in (50, 90, 95, 99, 99.9):
        out[f"p{q:g}_{prefix}_ms"] = float(np.percentile(x, q))
    return out


def make_scenario(
    run_dir: Path,
    name: str,
    *,
    params: dict[str, Any] | None = None,
    n: int = 200,
    ttft_ms: float = 100.0,
    ttft_sd: float = 10.0,
    itl_ms: float = 20.0,
    out_tokens: int = 16,
    duration: float = 10.0,
    output_throughput: float | None = None,
    slo_passed: bool | None = None,
    errors: dict[str, int] | None = None,
    replicas: int = 2,
    events: list[dict[str, Any]] | None = None,
    seed: int = 0,
) -> Path:
    """Write one scenario directory; returns it. TTFT ~ Normal(ttft_ms, ttft_sd) clipped > 0."""
    rng = np.random.default_rng(seed)
    d = Path(run_dir) / name.replace("/", "_").replace("<", "_").replace(">", "_")
    d.mkdir(parents=True, exist_ok=True)
    ttft = np.clip(rng.normal(ttft_ms, ttft_sd, n), 1, None)
    t_start = T0 + np.sort(rng.uniform(0, duration, n))
    records, itl_all, e2e, tpot = [], [], [], []
    for i in range(n):
        gaps = np.clip(rng.normal(itl_ms, itl_ms / 10, out_tokens - 1), 0.1, None)
        e = float(ttft[i] + gaps.sum())
        itl_all.extend(gaps.tolist())
        e2e.append(e)
        tpot.append((e - ttft[i]) / (out_tokens - 1))
        records.append(
            {
                "id": f"r{i}",
                "name": "POST /v1/chat/completions",
                "model": "m",
                "t_start": float(t_start[i]),
                "queue_time": 0.0,
                "ttft": float(ttft[i]),
                "ttft_content": float(ttft[i]),
                "itl": [round(g, 3) for g in gaps.tolist()],
                "e2e": e,
                "stream_closed": e + 0.5,
                "prompt_tokens": 32,
                "output_tokens": out_tokens,
                "token_chunks": out_tokens,
                "finish_reason": "length",
                "status": 200,
                "error": None,
                "aborted": False,
            }
        )
    failed = 0
    for msg, k in (errors or {}).items():
        for _ in range(k):
            failed += 1
            records.append(
                {
                    "id": None,
                    "t_start": T0 + 1,
                    "ttft": None,
                    "e2e": None,
                    "itl": [],
                    "output_tokens": 0,
                    "status": 500,
                    "error": msg,
                    "aborted": False,
                }
            )
    with (d / "records.jsonl").open("w") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
        fh.write('{"torn": ')  # a killed writer's last line must be tolerated
    if output_throughput is None:
        output_throughput = n * out_tokens / duration
    summary: dict[str, Any] = {
        "duration": duration,
        "completed": n,
        "failed": failed,
        "aborted": 0,
        "total_input_tokens": 32 * n,
        "total_output_tokens": out_tokens * n,
        "request_throughput": n / duration,
        "request_goodput": (n / duration) if slo_passed is not False else n / duration / 2,
        "output_throughput": output_throughput,
        "total_token_throughput": output_throughput + 32 * n / duration,
        "max_output_tokens_per_s": output_throughput * 1.2,
        "max_concurrent_requests": (params or {}).get("users", 1),
        "errors": errors or {},
        "slo": []
        if slo_passed is None
        else [{"expr": "ttft_p95<=800ms", "value": 123.0, "passed": slo_passed}],
        "intervals": [
            {
                "t": T0 + s,
                "requests": n / duration,
                "failed": 0,
                "output_tokens": output_throughput,
                "input_tokens": 32 * n / duration,
                "in_flight": (params or {}).get("users", 1),
                "ttft_p50_ms": ttft_ms,
                "ttft_p95_ms": ttft_ms + 2 * ttft_sd,
                "itl_p50_ms": itl_ms,
                "itl_p99_ms": itl_ms * 1.3,
            }
            for s in range(int(duration))
        ],
        "histograms": {},
        "meta": {
            "model": "m",
            "host": "http://127.0.0.1:8000",
            "users": (params or {}).get("users", 1),
            "started_at": T0,
            "ended_at": T0 + duration,
            "locust_version": "2.47.0",
            "locust_llm_version": "0.1.0",
        },
    }
    summary.update(_stats("ttft", ttft))
    summary.update(_stats("tpot", np.array(tpot)))
    summary.update(_stats("itl", np.array(itl_all)))
    summary.update(_stats("e2el", np.array(e2e)))
    (d / "summary.json").write_text(json.dumps(summary))
    (d / "scenario.json").write_text(json.dumps({"name": name, **(params or {})}))
    with (d / "server_metrics.jsonl").open("w") as fh:
        for s in range(int(duration)):
            for r in range(replicas):
                fh.write(
                    json.dumps(
                        {
                            "t": T0 + s + 0.5,
                            "replica": f"r{r}",
                            "model": "m",
                            "num_requests_running": 3 + r,
                            "num_requests_waiting": s % 3,
                            "kv_cache_usage_perc": 0.05 * s,
                        }
                    )
                    + "\n"
                )
            fh.write(
                json.dumps({"t": T0 + s + 0.5, "nginx": {"active": 5, "writing": 3, "waiting": 2}})
                + "\n"
            )
    with (d / "events.jsonl").open("w") as fh:
        for ev in events or []:
            fh.write(json.dumps(ev) + "\n")
    return d
