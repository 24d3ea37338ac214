"""Pure aggregation of sampler lines: per-GPU figures, energy per output token, per replica.

Energy comes from the driver's total-energy counter (mJ, monotonic): last - first sample in
the measured window. Where a GPU lacks the counter, power is integrated over time
(trapezoids), and `energy_source` says which was used.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    """Sampler lines; a torn last line (the sampler was killed mid-write) is skipped."""
    out = []
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def gpu_figures(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One GPU's samples (time order) -> utilization, power, memory, clock, energy."""
    rows = sorted(rows, key=lambda r: r["t"])

    def vals(k: str) -> list[float]:
        return [float(r[k]) for r in rows if isinstance(r.get(k), (int, float))]

    util, power, mem, clock = (
        vals("util"),
        vals("power_w"),
        vals("mem_used_mib"),
        vals("sm_clock_mhz"),
    )
    energy_j = None
    source = None
    e = [(r["t"], r["energy_mj"]) for r in rows if isinstance(r.get("energy_mj"), (int, float))]
    if len(e) >= 2:
        energy_j = (e[-1][1] - e[0][1]) / 1000.0
        source = "counter"
    else:
        pw = [(r["t"], r["power_w"]) for r in rows if isinstance(r.get("power_w"), (int, float))]
        if len(pw) >= 2:
            energy_j = sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(pw, pw[1:]))
            source = "power integral"
    return {
        "samples": len(rows),
        "seconds": rows[-1]["t"] - rows[0]["t"] if rows else 0.0,
        "mean_util_pct": _mean(util),
        "max_util_pct": max(util) if util else None,
        "mean_power_w": _mean(power),
        "max_power_w": max(power) if power else None,
        "max_mem_used_mib": max(mem) if mem else None,
        "mean_sm_clock_mhz": _mean(clock),
        "energy_j": energy_j,
        "energy_source": source,
    }


def aggregate(
    samples: Iterable[dict[str, Any]],
    *,
    output_tokens: int | None = None,
    start: float | None = None,
    end: float | None = None,
    groups: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, Any]:
    """The summary's `gpu` field.

    `start`/`end` (epoch s) bound the measured window (the load's, warm-up excluded), so
    energy per token divides like by like. `groups`: replica name -> GPU indices (the plan's
    CUDA_VISIBLE_DEVICES groups), for per-replica figures; a replica's share of the output
    tokens is not known to the sampler, so per-replica figures are energy and utilization.
    """
    by_gpu: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in samples:
        if (start is None or r["t"] >= start) and (end is None or r["t"] <= end):
            by_gpu[int(r["gpu"])].append(r)
    if not by_gpu:
        return {"gpus": [], "note": "no GPU samples in the measured window"}
    gpus = []
    for i in sorted(by_gpu):
        fig = gpu_figures(by_gpu[i])
        fig["gpu"] = i
        fig["uuid"] = by_gpu[i][0].get("uuid")
        gpus.append(fig)
    energies = [g["energy_j"] for g in gpus if g["energy_j"] is not None]
    total_j = sum(energies) if energies else None
    seconds = max(g["seconds"] for g in gpus)
    out: dict[str, Any] = {
        "gpus": gpus,
        "gpu_count": len(gpus),
        "energy_j": total_j,
        "mean_power_w": total_j / seconds if total_j is not None and seconds > 0 else None,
        "seconds": seconds,
    }
    if output_tokens:
        out["energy_per_output_token_j"] = total_j / output_tokens if total_j is not None else None
        out["output_tokens_per_s_per_gpu"] = (
            output_tokens / seconds / len(gpus) if seconds > 0 else None
        )
    if groups:
        replicas = {}
        index = {g["gpu"]: g for g in gpus}
        for name, ids in groups.items():
            member = [index[i] for i in ids if i in index]
            e = [g["energy_j"] for g in member if g["energy_j"] is not None]
            u = [g["mean_util_pct"] for g in member if g["mean_util_pct"] is not None]
            replicas[name] = {
                "gpus": list(ids),
                "energy_j": sum(e) if e else None,
                "mean_util_pct": _mean(u),
            }
        out["replicas"] = replicas
    return out
