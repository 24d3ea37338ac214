import numpy as np

from locust_llm.report.stats import bootstrap_quantile_diff, ecdf


def test_bootstrap_ci_contains_true_difference():
    rng = np.random.default_rng(1)
    base = rng.normal(100, 10, 3000)
    cand = rng.normal(130, 10, 3000)  # a pure shift: every quantile differs by 30
    for q in (0.5, 0.99):
        d = bootstrap_quantile_diff(base, cand, q, resamples=400)
        assert d is not None
        assert d.lo <= 30 <= d.hi, (q, d)
        assert d.significant
        assert d.hi - d.lo < 15


def test_bootstrap_is_seeded_and_handles_tiny_samples():
    x, y = np.arange(50.0), np.arange(50.0) + 5
    a = bootstrap_quantile_diff(x, y, 0.5, resamples=200)
    b = bootstrap_quantile_diff(x, y, 0.5, resamples=200)
    assert a == b
    assert bootstrap_quantile_diff([1.0], y, 0.5) is None


def test_ecdf_thins_but_keeps_tail():
    x = np.arange(1, 100_001, dtype=float)
    v, p = ecdf(x, max_points=200)
    assert len(v) <= 200 and v[-1] == 100_000 and p[-1] == 1.0
    assert np.all(np.diff(v) >= 0)
    v, p = ecdf([3.0, 1.0, 2.0])
    assert list(v) == [1, 2, 3] and list(p) == [1 / 3, 2 / 3, 1]
