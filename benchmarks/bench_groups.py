"""Client cost of per-group figures: ``Collector.add`` and the Locust rows per request, for
one name (no groups kept), two names, and two names x two models. Ratios within one run.

    PYTHONPATH=. python benchmarks/bench_groups.py [requests] [tokens]
"""

from __future__ import annotations

import random
import sys
import time

from locust.stats import RequestStats

from locust_llm.metrics.collector import Collector
from locust_llm.metrics.record import LLMResult
from locust_llm.stats_rows import log_result


def results(n: int, tokens: int, names: int, models: int) -> list[LLMResult]:
    rng = random.Random(0)
    out = []
    for i in range(n):
        itl = [rng.uniform(5, 30) for _ in range(tokens - 1)]
        out.append(
            LLMResult(
                name=f"n{i % names}",
                model=f"m{(i // names) % models}",
                t_start=1e9 + i * 0.01,
                ttft=rng.uniform(20, 200),
                itl=itl,
                e2e=100 + sum(itl),
                output_tokens=tokens,
                token_chunks=tokens,
                prompt_tokens=100,
            )
        )
    return out


def run(rs: list[LLMResult]) -> float:
    c, stats = Collector(), RequestStats()
    t = time.perf_counter()
    for r in rs:
        log_result(stats, r, c.add(r))
    return time.perf_counter() - t


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    cases = {"1 name": (1, 1), "2 names": (2, 1), "2 names x 2 models": (2, 2)}
    data = {k: results(n, tokens, *v) for k, v in cases.items()}
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(7):  # interleaved rounds, best of each: load on the host hits all cases alike
        for k, rs in data.items():
            best[k] = min(best[k], run(rs))
    base = best["1 name"]
    for k, t in best.items():
        print(f"{k:<20} {t * 1e6 / (n * tokens):6.3f} us/token  x{t / base:.2f}")


if __name__ == "__main__":
    main()
