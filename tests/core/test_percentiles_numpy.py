"""Every percentile field equals numpy's (linear) over the same samples, in one process and
merged across workers through msgpack; beyond the exact cap, within the sketch's bound."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from locust_llm.metrics.collector import Collector
from locust_llm.metrics.distribution import SKETCH_REL_ERROR
from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.summary import PERCENTILES, summarize

T0 = 1_763_790_000.5


def gaps(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    if kind == "lognormal":
        return rng.lognormal(np.log(30.0), 0.7, n)
    if kind == "pareto":  # heavy tail: the mean barely exists
        return 5.0 * (1.0 + rng.pareto(1.2, n))
    if kind == "ties":  # a coarse clock: many equal values
        return np.round(rng.lognormal(np.log(20.0), 0.3, n))
    x = rng.normal(20.0, 2.0, n).clip(0.5)  # stalls: 1 % of gaps 80x longer
    x[rng.random(n) < 0.01] *= 80.0
    return x


def results_for(itl: np.ndarray, rng: np.random.Generator, span_s: float) -> list[LLMResult]:
    """Split the ITL samples over requests (10–200 chunks) started across ``span_s``."""
    out, i = [], 0
    while i < len(itl):
        k = int(rng.integers(10, 200))
        part = itl[i : i + k].tolist()
        i += k
        ttft = float(rng.lognormal(np.log(200.0), 1.0))
        out.append(
            LLMResult(
                name="chat",
                t_start=T0 + float(rng.uniform(0, span_s)),
                ttft=ttft,
                ttft_content=ttft,
                itl=part,
                e2e=ttft + sum(part),
                output_tokens=len(part) + 1,
                token_chunks=len(part) + 1,
                prompt_tokens=10,
                status=200,
            )
        )
    return out


def collect(results: list[LLMResult], workers: int, cap: int | None = None) -> dict:
    kw = {} if cap is None else {"exact_cap": cap}
    if workers == 1:
        c = Collector(**kw)
        for r in results:
            c.add(r)
        return summarize(c)
    master = Collector(**kw)
    ws = [Collector(**kw) for _ in range(workers)]
    for j, r in enumerate(results):
        ws[j % workers].add(r)
        if j % 37 == 0:  # a report mid-run: only what is new since the last one travels
            w = ws[(j // 37) % workers]
            master.merge_delta(msgpack.loads(msgpack.dumps(w.take_delta())))
    for w in ws:
        master.merge_delta(msgpack.loads(msgpack.dumps(w.take_delta())))
    return summarize(master)


def numpy_fields(name: str, x: np.ndarray) -> dict[str, float]:
    out = {
        f"mean_{name}_ms": float(np.mean(x)),
        f"std_{name}_ms": float(np.std(x)),
        f"median_{name}_ms": float(np.median(x)),
        f"min_{name}_ms": float(np.min(x)),
        f"max_{name}_ms": float(np.max(x)),
    }
    for p in PERCENTILES:
        out[f"p{p:g}_{name}_ms"] = float(np.percentile(x, p, method="linear"))
    return out


def check(s: dict, results: list[LLMResult], rel: float) -> None:
    itl = np.array([g for r in results for g in r.itl])
    ttft = np.array([r.ttft for r in results])
    tpot = np.array([r.tpot for r in results if r.tpot is not None])
    for name, x in (("itl", itl), ("ttft", ttft), ("tpot", tpot), ("e2el", None)):
        if x is None:
            x = np.array([r.e2e for r in results])
        assert s[f"count_{name}"] == len(x)
        for k, want in numpy_fields(name, x).items():
            bound = rel if k.startswith(("p", "median")) else 1e-9
            assert s[k] == pytest.approx(want, rel=bound, abs=1e-9), (k, len(x))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.one_of(st.integers(10, 2000), st.sampled_from([10_000, 100_000])),
    kind=st.sampled_from(["lognormal", "pareto", "ties", "stalls"]),
    seed=st.integers(0, 2**32 - 1),
    workers=st.sampled_from([1, 2, 3]),
)
@example(n=100_000, kind="stalls", seed=7, workers=3)
@example(n=100_000, kind="pareto", seed=8, workers=1)
@example(n=10, kind="ties", seed=9, workers=2)
# heavy tails: requests ending minutes apart make a worker compact before its first report
@example(n=10_000, kind="pareto", seed=213, workers=2)
def test_every_field_equals_numpy_up_to_the_cap(n, kind, seed, workers):
    rng = np.random.default_rng(seed)
    results = results_for(gaps(rng, n, kind), rng, span_s=6.0)
    # exact: numpy's value to rounding, far inside the 0.5 % promised
    check(collect(results, workers), results, rel=1e-12)


@settings(max_examples=12, deadline=None)
@given(
    kind=st.sampled_from(["lognormal", "pareto", "ties", "stalls"]),
    seed=st.integers(0, 2**32 - 1),
    workers=st.sampled_from([1, 3]),
)
def test_beyond_the_cap_within_the_sketch_bound(kind, seed, workers):
    rng = np.random.default_rng(seed)
    results = results_for(gaps(rng, 6000, kind), rng, span_s=6.0)
    s = collect(results, workers, cap=1000)  # ITL (6000 samples) goes sketch-only
    check(s, results, rel=SKETCH_REL_ERROR)


def test_a_worker_stops_shipping_samples_past_the_cap():
    rng = np.random.default_rng(1)
    results = results_for(gaps(rng, 3000, "lognormal"), rng, span_s=2.0)
    w = Collector(exact_cap=2000)  # the first half (~1500 gaps) is exact, the second crosses
    for r in results[: len(results) // 2]:
        w.add(r)
    first = len(msgpack.dumps(w.take_delta()))
    for r in results[len(results) // 2 :]:
        w.add(r)
    d = w.take_delta()
    d.pop("groups", None)  # the windows by second only
    assert all("x" not in wd["sk"]["itl"] for wd in d.values())  # sketch only from now on
    assert all("x" in wd["sk"]["ttft"] for wd in d.values())  # other metrics stay exact
    assert len(msgpack.dumps(d)) < first
