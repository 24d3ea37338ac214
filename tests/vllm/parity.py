"""locust-llm's records through vLLM's own `calculate_metrics`, field by field against our summary.

`vllm_metrics(records, duration)` turns each record into vLLM's `RequestFuncOutput` (seconds)
inside the vLLM venv and returns `BenchmarkMetrics` with percentiles flattened to our names
(`p99_ttft_ms`). `compare(ours, theirs)` lists every same-named field that disagrees beyond its
tolerance: counts, totals and peaks exactly; means, std, throughputs, medians and percentiles
to 1e-9 relative (the samples are kept, so percentiles are numpy's own).
"""

from __future__ import annotations

import json

from .helpers import vllm_python

PERCENTILES = [50, 90, 95, 99, 99.9]
EXACT = ("completed", "failed", "total_input_tokens", "total_output_tokens",
         "max_concurrent_requests", "max_output_tokens_per_s")  # fmt: skip
RENAME = {"total_input": "total_input_tokens", "total_output": "total_output_tokens"}

_CODE = r"""
import json, sys
from dataclasses import asdict
from vllm.benchmarks.serve import calculate_metrics
from vllm.benchmarks.lib.endpoint_request_func import RequestFuncOutput
from vllm.benchmarks.datasets import SampleRequest
data = json.load(sys.stdin)
outs, reqs = [], []
for r in data["records"]:
    o = RequestFuncOutput()
    o.success, o.latency, o.output_tokens = r["success"], r["latency"], r["output_tokens"]
    o.ttft, o.itl, o.prompt_len, o.start_time = r["ttft"], r["itl"], r["prompt_len"], r["start_time"]
    outs.append(o)
    reqs.append(SampleRequest(prompt="", prompt_len=r["prompt_len"], expected_output_len=0))
m, _ = calculate_metrics(reqs, outs, data["duration"], None, data["percentiles"], {})
d = asdict(m)
for k in [k for k in d if k.startswith("percentiles_")]:
    for p, v in d.pop(k):
        d["p%s_%s" % (("%g" % p), k[len("percentiles_"):])] = v
print(json.dumps(d))
"""


def to_vllm(rec: dict) -> dict:
    ok = rec.get("error") is None and rec.get("ttft") is not None
    return {
        "success": ok,
        "latency": (rec.get("e2e") or 0.0) / 1000.0,
        "output_tokens": rec.get("output_tokens") or 0,
        "ttft": (rec.get("ttft") or 0.0) / 1000.0,
        "itl": [x / 1000.0 for x in rec.get("itl") or []],
        "prompt_len": rec.get("prompt_tokens") or 0,
        "start_time": rec["t_start"],
    }


def vllm_metrics(records: list[dict], duration: float) -> dict:
    payload = json.dumps(
        {"records": [to_vllm(r) for r in records], "duration": duration, "percentiles": PERCENTILES}
    )
    d = json.loads(vllm_python(_CODE, stdin=payload).strip().splitlines()[-1])
    return {RENAME.get(k, k): v for k, v in d.items()}


def tolerance(field: str) -> float:
    if field in EXACT:
        return 0.0
    return 1e-9  # percentiles too: the samples are kept, so they are numpy's own


def compare(ours: dict, theirs: dict, skip: dict[str, str] | None = None) -> dict[str, str]:
    """field -> 'ours vs vLLM' for every shared field out of tolerance (skip: field -> why)."""
    bad = {}
    for k, v in theirs.items():
        if k not in ours or k in (skip or {}) or not isinstance(v, (int, float)):
            continue
        o = ours[k]
        if not isinstance(o, (int, float)) or isinstance(o, bool):
            continue
        tol = tolerance(k)
        scale = max(abs(v), abs(o), 1e-12)
        if (tol == 0 and o != v) or abs(o - v) / scale > tol:
            bad[k] = f"{o!r} vs {v!r} (rel {abs(o - v) / scale:.2e})"
    return bad
