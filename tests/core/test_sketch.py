"""LogHistogram: 1 % quantiles against numpy, exact moments, exact merges, serialisation."""

from __future__ import annotations

import json
import math

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from locust_llm.metrics.sketch import LogHistogram

QS = [0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0]
REL = 0.01


def sketch_of(values) -> LogHistogram:
    h = LogHistogram()
    h.add_many([float(v) for v in values])
    return h


def assert_quantiles_bracketed(h: LogHistogram, x: np.ndarray, rel: float = REL) -> None:
    """Each quantile lies within ``rel`` of numpy's linear one: the sketch interpolates
    between its two neighbouring ranks, each within ``rel`` of the true sample."""
    got = h.quantiles(QS)
    for q, v in zip(QS, got, strict=True):
        want = float(np.quantile(x, q, method="linear"))
        if float(np.quantile(x, q, method="lower")) > 1e-6:
            assert abs(v - want) <= rel * want * (1 + 1e-9), (q, v, want)
        else:  # the zero bucket: between the values it stands for
            assert -1e-9 <= v <= float(np.quantile(x, q, method="higher")) * (1 + rel) + 1e-9


def assert_moments(h: LogHistogram, x: np.ndarray) -> None:
    assert h.count == len(x)
    assert h.mean == pytest.approx(float(np.mean(x)), rel=1e-12, abs=1e-12)
    assert h.std == pytest.approx(float(np.std(x)), rel=1e-9, abs=1e-9)
    assert h.min == float(np.min(x)) and h.max == float(np.max(x))


def _data(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "lognormal":
        return rng.lognormal(mean=4.0, sigma=1.2, size=n)  # ms, like TTFT
    if kind == "uniform":
        return rng.uniform(5.0, 50.0, size=n)  # ms, like ITL
    if kind == "bimodal":
        return np.concatenate(
            [rng.normal(20.0, 1.0, size=n // 2), rng.normal(2000.0, 50.0, size=n - n // 2)]
        ).clip(0.01)
    if kind == "tight":  # large mean, tiny spread: cancellation in naive variance formulas
        return 1.0e4 + rng.uniform(0, 1e-3, size=n)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["lognormal", "uniform", "bimodal", "tight"])
@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 20_000])
def test_quantiles_and_moments_match_numpy(kind, n):
    x = _data(kind, n, seed=n)
    h = sketch_of(x)
    assert_quantiles_bracketed(h, x)
    assert_moments(h, x)


_values = st.lists(
    st.one_of(
        st.floats(min_value=1e-3, max_value=1e7, allow_nan=False),
        st.sampled_from([0.0, 1e-3, 1.0, 20.0, 1e7]),
    ),
    min_size=1,
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(_values)
def test_quantiles_property(values):
    x = np.array(values)
    h = sketch_of(values)
    assert_quantiles_bracketed(h, x)
    assert_moments(h, x)
    # quantiles are monotone in q
    got = h.quantiles(QS)
    assert got == sorted(got)
    # quantiles() in any order equals quantile() one by one
    assert h.quantiles(QS[::-1]) == got[::-1]
    assert [h.quantile(q) for q in QS] == got


@settings(max_examples=50, deadline=None)
@given(st.sampled_from([0.001, 0.005, 0.02, 0.05, 0.2]), _values)
def test_other_relative_errors(rel, values):
    h = LogHistogram(rel)
    h.add_many(values)
    assert_quantiles_bracketed(h, np.array(values), rel)


def _parts(values: list[float], cuts: list[int]) -> list[list[float]]:
    edges = [0, *sorted(c % (len(values) + 1) for c in cuts), len(values)]
    return [values[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def _state(h: LogHistogram) -> dict:
    d = h.to_dict()
    d["q"] = h.quantiles(QS)
    d["mean"] = h.mean
    d["std"] = h.std
    return d


@settings(max_examples=150, deadline=None)
@given(_values, st.lists(st.integers(0, 10_000), max_size=4), st.randoms())
def test_merge_of_split_data_equals_whole(values, cuts, rnd):
    whole = sketch_of(values)
    parts = [sketch_of(p) for p in _parts(values, cuts)]
    rnd.shuffle(parts)
    merged = LogHistogram()
    for p in parts:
        merged.merge(p)
    assert merged.count == whole.count == len(values)
    assert merged._bins == whole._bins
    assert merged.zero == whole.zero
    assert merged.quantiles(QS) == whole.quantiles(QS)
    # moments too, bit for bit: the summary must not depend on how samples were split
    assert _state(merged) == _state(whole)


def test_merge_bit_identical_moments_for_many_splits():
    x = list(_data("lognormal", 5000, seed=7)) + [1 / 3, 0.1, 0.2, 0.7] * 50
    whole = sketch_of(x)
    rng = np.random.default_rng(1)
    for _ in range(20):
        perm = rng.permutation(len(x))
        k = int(rng.integers(2, 5))
        merged = LogHistogram()
        for chunk in np.array_split(perm, k):
            merged.merge(sketch_of([x[i] for i in chunk]))
        assert (merged.mean, merged.std, merged.sum) == (whole.mean, whole.std, whole.sum)


def test_merge_rejects_other_rel_error_and_handles_empty():
    with pytest.raises(ValueError):
        LogHistogram(0.01).merge(LogHistogram(0.02))
    h = sketch_of([1.0, 2.0])
    before = _state(h)
    h.merge(LogHistogram())
    assert _state(h) == before
    e = LogHistogram()
    e.merge(h)
    assert _state(e) == before


@pytest.mark.parametrize("rel", [0.0, 1.0, -0.1, 1.5])
def test_rel_error_validated(rel):
    with pytest.raises(ValueError):
        LogHistogram(rel)


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.just([]), _values))
def test_to_dict_roundtrip_json_and_msgpack(values):
    h = sketch_of(values)
    d = h.to_dict()
    for wire in (
        lambda d: json.loads(json.dumps(d)),
        lambda d: msgpack.unpackb(msgpack.packb(d), raw=False),
    ):
        h2 = LogHistogram.from_dict(wire(d))
        assert _state(h2) == _state(h)
        assert (h2.min, h2.max, h2.count) == (h.min, h.max, h.count)
        # a restored sketch keeps working: add and merge
        h2.add(5.0)
        h2.merge(h)
        assert h2.count == 2 * h.count + 1


def test_bounded_bucket_count_for_a_million_samples():
    rng = np.random.default_rng(0)
    x = np.exp(rng.uniform(math.log(1e-3), math.log(1e7), size=1_000_000))
    x[:2] = [1e-3, 1e7]
    h = LogHistogram()
    h.add_many(x.tolist())
    gamma = (1 + REL) / (1 - REL)
    bound = math.ceil(math.log(1e10) / math.log(gamma)) + 2
    assert len(h._bins) <= bound  # ≈ 1 153: depends on the range, not on the count
    assert len(h.to_dict()["k"]) == len(h._bins)
    assert len(msgpack.packb(h.to_dict())) < 16 * 1024
    assert_quantiles_bracketed(h, x)
    assert h.mean == pytest.approx(float(np.mean(x)), rel=1e-12)
    assert h.std == pytest.approx(float(np.std(x)), rel=1e-9)


def test_empty():
    h = LogHistogram()
    assert h.count == len(h) == 0
    assert h.quantiles(QS) == [0.0] * len(QS)
    assert h.quantile(0.5) == 0.0
    assert (h.mean, h.std) == (0.0, 0.0)
    assert h.buckets() == []
    d = h.to_dict()
    assert d["lo"] is None and d["hi"] is None
    json.dumps(d)


@pytest.mark.parametrize("v", [1e-3, 0.5, 1.0, 33.3, 1234.5678, 9.99e6])
def test_one_value_is_exact(v):
    h = sketch_of([v])
    assert h.quantiles(QS) == [v] * len(QS)
    assert (h.mean, h.std, h.min, h.max) == (v, 0.0, v, v)


def test_repeated_value_has_zero_std():
    h = sketch_of([33.3] * 1000)
    assert h.std == 0.0
    assert h.mean == pytest.approx(33.3, rel=1e-15)
    assert h.quantiles(QS) == [33.3] * len(QS)


def test_zeros():
    h = sketch_of([0.0] * 10)
    assert h.quantiles(QS) == [0.0] * len(QS)
    assert (h.mean, h.std, h.zero) == (0.0, 0.0, 10)
    h = sketch_of([0.0] * 10 + [10.0] * 10)
    q = h.quantiles([0.25, 0.75])
    assert q[0] == 0.0 and abs(q[1] - 10.0) <= 0.1
    assert h.buckets()[0][1] == 10


def test_negatives_are_counted_in_the_zero_bucket():
    x = [-2.0, -0.5, 0.0, 1.0, 2.0, 3.0]
    h = sketch_of(x)
    assert h.zero == 3
    assert h.quantile(0.0) == -2.0  # min and max stay exact
    assert 0.0 <= h.quantile(0.3) <= 0.0  # rank 1.5 -> the zero bucket, clamped to 0
    # rank 2.5 -> halfway between the 0.0 and the 1.0, as numpy interpolates
    assert h.quantile(0.5) == pytest.approx(float(np.quantile(x, 0.5)), rel=0.01)
    assert abs(h.quantile(0.6) - 1.0) <= 0.01  # rank 3 -> 1.0
    assert h.mean == pytest.approx(float(np.mean(x)))
    assert h.std == pytest.approx(float(np.std(x)))
    assert sum(c for _, c in h.buckets()) == h.count


def test_buckets_ascending_and_cover_samples():
    x = _data("bimodal", 1000, seed=3)
    h = sketch_of(x)
    b = h.buckets()
    bounds = [u for u, _ in b]
    assert bounds == sorted(bounds) and sum(c for _, c in b) == 1000
    # every sample is at or below the bound of its cumulative bucket
    xs = np.sort(x)
    cum = 0
    for upper, c in b:
        cum += c
        assert xs[cum - 1] <= upper * (1 + 1e-12)


def test_value_at_bucket_edges_within_error():
    gamma = (1 + REL) / (1 - REL)
    for k in range(-50, 700, 7):
        v = gamma**k
        for x in (v, math.nextafter(v, 0), math.nextafter(v, math.inf)):
            got = sketch_of([x, x * 1.5]).quantile(0.0 + 1e-9)
            assert abs(got - x) <= REL * x * (1 + 1e-9)


@settings(max_examples=100, deadline=None)
@given(_values)
def test_add_many_equals_add(values):
    a = LogHistogram()
    for v in values:
        a.add(v)
    b = LogHistogram()
    b.add_many(values[: len(values) // 2])
    b.add_many([])
    b.add_many(values[len(values) // 2 :])
    assert _state(a) == _state(b)
    assert (a.min, a.max, a.count) == (b.min, b.max, b.count)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_raise_and_leave_the_sketch_unchanged(bad):
    h = sketch_of([1.0, 2.0])
    before = (_state(h), h.min, h.max, h.count)
    with pytest.raises((ValueError, OverflowError)):
        h.add(bad)
    with pytest.raises((ValueError, OverflowError)):
        h.add_many([3.0, bad])
    assert (_state(h), h.min, h.max, h.count) == before


def test_from_dict_of_float_sums_still_loads():
    """Histograms serialised with float sums only (no exact 'S'/'SS') remain readable."""
    h = sketch_of([1.5, 2.5, 1000.0])
    d = h.to_dict()
    legacy = {k: v for k, v in d.items() if k not in ("S", "SS")}
    h2 = LogHistogram.from_dict(legacy)
    assert h2.quantiles(QS) == h.quantiles(QS)
    assert h2.mean == pytest.approx(h.mean, rel=1e-15)
    assert h2.std == pytest.approx(h.std, rel=1e-12)
    assert (h2.sum, h2.sumsq) == pytest.approx((1004.0, 1.5**2 + 2.5**2 + 1e6))
