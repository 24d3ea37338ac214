import math

import numpy as np
import pytest
from scipy import stats

from locust_llm.workload.arrivals import ArrivalSchedule, inter_arrival_sampler


def gaps(times):
    return np.diff(np.asarray(times))


def test_poisson_inter_arrivals_pass_ks_against_exponential():
    rate = 50.0
    times = ArrivalSchedule(rate, "poisson", seed=1).times(200.0)  # ~10k arrivals
    g = gaps(times)
    res = stats.kstest(g, "expon", args=(0, 1 / rate))
    assert res.pvalue > 0.01, res
    # the test has power: the same gaps are rejected against a wrong mean and against gamma(0.5)
    assert stats.kstest(g, "expon", args=(0, 1.2 / rate)).pvalue < 1e-6
    bursty = gaps(ArrivalSchedule(rate, "gamma", burstiness=0.5, seed=1).times(200.0))
    assert stats.kstest(bursty, "expon", args=(0, 1 / rate)).pvalue < 1e-6


@pytest.mark.parametrize("b", [0.5, 1.0, 4.0])
def test_gamma_burstiness_cv(b):
    g = gaps(ArrivalSchedule(20.0, "gamma", burstiness=b, seed=3).times(1000.0))
    cv = g.std() / g.mean()
    assert abs(cv - 1 / math.sqrt(b)) / (1 / math.sqrt(b)) < 0.05, cv
    assert abs(1 / g.mean() - 20.0) / 20.0 < 0.05


def test_constant_is_evenly_spaced():
    times = ArrivalSchedule(4.0, "constant").times(3.0)
    assert times == pytest.approx([i * 0.25 for i in range(12)])


@pytest.mark.parametrize("process,b", [("poisson", 1.0), ("gamma", 0.5), ("constant", 1.0)])
@pytest.mark.parametrize("k", [1, 2])
def test_total_rate_split_across_generators(process, b, k):
    rate, duration = 40.0, 120.0
    parts = [
        ArrivalSchedule(rate, process, burstiness=b, seed=9, index=i, count=k).times(duration)
        for i in range(k)
    ]
    total = sum(len(p) for p in parts) / duration
    assert abs(total - rate) / rate < 0.05, total
    for p in parts:  # each generator carries its share
        assert abs(len(p) / duration - rate / k) / (rate / k) < 0.08
    merged = sorted(t for p in parts for t in p)
    assert merged == ArrivalSchedule(rate, process, burstiness=b, seed=9).times(
        duration
    )  # exact interleave


def test_interleave_keeps_burstiness_of_the_union():
    parts = [
        ArrivalSchedule(20.0, "gamma", burstiness=0.5, seed=4, index=i, count=2).times(500.0)
        for i in range(2)
    ]
    g = gaps(sorted(t for p in parts for t in p))
    assert abs(g.std() / g.mean() - math.sqrt(2)) < 0.08


def test_independent_split_rate():
    rate, duration = 40.0, 200.0
    parts = [
        ArrivalSchedule(rate, "poisson", seed=2, index=i, count=2, split="independent").times(
            duration
        )
        for i in range(2)
    ]
    assert parts[0] != parts[1]
    assert abs(sum(map(len, parts)) / duration - rate) / rate < 0.05


def test_reproducible_and_seed_sensitive():
    a = ArrivalSchedule(10.0, "poisson", seed=1).times(10.0)
    assert a == ArrivalSchedule(10.0, "poisson", seed=1).times(10.0)
    assert a != ArrivalSchedule(10.0, "poisson", seed=2).times(10.0)
    assert a[0] == 0.0 and all(x <= y for x, y in zip(a, a[1:]))


def test_infinite_rate_is_a_burst():
    it = iter(ArrivalSchedule(math.inf, "poisson"))
    assert [next(it) for _ in range(5)] == [0.0] * 5


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(rate=0), "rate must be > 0"),
        (dict(rate=1, process="weibull"), "unknown arrival process"),
        (dict(rate=1, process="gamma", burstiness=0), "burstiness"),
    ],
)
def test_sampler_errors(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        inter_arrival_sampler(**kwargs)


def test_bad_index():
    with pytest.raises(ValueError, match="out of range"):
        ArrivalSchedule(1.0, index=2, count=2)
