"""Worst relative error of the summary's percentile fields against numpy, by sample count.

Feeds random latency workloads (log-normal, Pareto tails, ties, 1 % stalls) into the same
``Window``/``metric_fields`` path the summary uses, once in one window and once split over
several windows merged as the master merges worker reports, and compares every field with
``np.percentile(..., method="linear")``, ``np.mean`` and ``np.std``.

    python scripts/percentile_accuracy.py [--seeds 50] [--sizes 10,100,1000]
"""

from __future__ import annotations

import argparse

import msgpack
import numpy as np

from locust_llm.metrics.collector import Window
from locust_llm.metrics.distribution import EXACT_CAP
from locust_llm.metrics.summary import PERCENTILES, metric_fields


def workload(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    if kind == "lognormal":
        return rng.lognormal(np.log(40.0), 0.6, n)
    if kind == "pareto":
        return 20.0 * (1.0 + rng.pareto(1.5, n))
    if kind == "ties":
        return np.round(rng.lognormal(np.log(30.0), 0.3, n))
    x = rng.normal(25.0, 2.0, n).clip(0.1)  # stalls: 1 % of gaps 50x longer
    stall = rng.random(n) < 0.01
    x[stall] *= 50.0
    return x


KINDS = ("lognormal", "pareto", "ties", "stalls")


def fields(samples: np.ndarray, parts: int) -> dict[str, float]:
    # beyond the cap the collector keeps the metric sketch-only: do the same here
    only = {"itl"} if len(samples) > EXACT_CAP else set()
    windows = [Window(only) for _ in range(parts)]
    for i, chunk in enumerate(np.array_split(samples, parts)):
        windows[i].sketches["itl"].add_many(chunk.tolist())
    total = Window(only)
    for w in windows:  # as the master merges worker reports: through msgpack
        total.merge(Window.from_dict(msgpack.loads(msgpack.dumps(w.to_dict()))) if parts > 1 else w)
    return metric_fields("itl", total)


def expected(samples: np.ndarray) -> dict[str, float]:
    out = {"mean_itl_ms": float(np.mean(samples)), "std_itl_ms": float(np.std(samples))}
    out["median_itl_ms"] = float(np.median(samples))
    for p in PERCENTILES:
        out[f"p{p:g}_itl_ms"] = float(np.percentile(samples, p, method="linear"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--sizes", default="10,50,100,200,500,1000,5000,10000,100000,1000000")
    args = ap.parse_args()
    names = ["median"] + [f"p{p:g}" for p in PERCENTILES] + ["mean", "std"]
    print("| n | merged | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for n in [int(s) for s in args.sizes.split(",")]:
        seeds = max(2, args.seeds if n <= 10000 else args.seeds // (10 if n <= 100000 else 20))
        for parts in (1, 4):
            worst = dict.fromkeys(names, 0.0)
            for seed in range(seeds):
                rng = np.random.default_rng(seed)
                x = workload(rng, n, KINDS[seed % len(KINDS)])
                got, want = fields(x, parts), expected(x)
                for name in names:
                    key = (
                        f"{name}_itl_ms" if name in ("median", "mean", "std") else f"{name}_itl_ms"
                    )
                    w, g = want[key], got[key]
                    err = abs(g - w) / abs(w) if w else abs(g)
                    worst[name] = max(worst[name], err)
            cells = " | ".join(f"{100 * worst[k]:.2f}%" for k in names)
            print(f"| {n} | {'4 windows' if parts > 1 else 'no'} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
