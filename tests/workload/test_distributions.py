import math
import random
import statistics

import pytest

from locust_llm.workload.distributions import (
    SpecError,
    parse_distribution,
    parse_length,
    parse_seconds,
)


@pytest.mark.parametrize(
    "spec,kind,params",
    [
        ("128", "fixed", (128,)),
        (128, "fixed", (128,)),
        ("fixed:64", "fixed", (64,)),
        ("uniform:64:256", "uniform", (64, 256)),
        ("uniform:low=64,high=256", "uniform", (64, 256)),
        ("normal:128:32", "normal", (128, 32)),
        ("normal:128,std=32", "normal", (128, 32)),
        ("lognormal:mean=128,sigma=0.5", "lognormal", (128, 0.5)),
        ("LogNormal:128:0.5", "lognormal", (128, 0.5)),
    ],
)
def test_parse_forms(spec, kind, params):
    d = parse_length(spec)
    assert d.kind == kind
    assert d.params == params


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("", "empty"),
        ("zipf:3", "unknown distribution 'zipf'"),
        ("uniform:64", "missing high"),
        ("uniform:256:64", "greater than high"),
        ("normal:128:-1", "std must be >= 0"),
        ("lognormal:0:1", "mean must be > 0"),
        ("normal:128:abc", "'abc' is not a number"),
        ("fixed:0", "not a length"),
        ("0", "not a length"),
        ("12:3", "bare number takes no arguments"),
        ("normal:mean=1,2", "positional argument"),
        ("normal:1:2:3", "takes 2 parameter"),
        ("normal:1:2,foo=3", "no parameter 'foo'"),
        ("normal:1:2,mean=3", "both by position and by name"),
        ("normal:1:2,min=10,max=5", "greater than max"),
        ("uniform:1.2:1.8", "holds no integer"),
        ("normal:nan:1", "finite"),
    ],
)
def test_errors_are_clear(spec, needle):
    with pytest.raises(SpecError) as exc:
        parse_length(spec)
    assert needle in str(exc.value)


def test_reproducible_by_seed():
    for spec in ("uniform:1:1000", "normal:128:32", "lognormal:128:0.8"):
        d = parse_length(spec)
        assert d.samples(200, seed=7) == d.samples(200, seed=7)
        assert d.samples(200, seed=7) != d.samples(200, seed=8)


def test_lengths_are_ints_clipped_to_one():
    d = parse_length("normal:2:50")
    xs = d.samples(2000, seed=1)
    assert all(isinstance(x, int) and x >= 1 for x in xs)
    assert xs.count(1) > 500  # the negative half lands on the clip


def test_min_max_clip():
    xs = parse_length("normal:100:100,min=50,max=120").samples(2000, seed=3)
    assert min(xs) == 50 and max(xs) == 120


def test_uniform_inclusive_bounds():
    xs = parse_length("uniform:3:5").samples(3000, seed=0)
    assert set(xs) == {3, 4, 5}


def test_moments():
    n = parse_length("normal:128:32").samples(20000, seed=2)
    assert abs(statistics.fmean(n) - 128) < 1.5
    assert abs(statistics.pstdev(n) - 32) < 1.5
    ln = parse_length("lognormal:mean=128,sigma=0.5").samples(40000, seed=2)
    assert abs(statistics.fmean(ln) - 128) < 2.5  # mean parameter is the distribution's mean
    logs = [math.log(x) for x in ln]
    assert abs(statistics.pstdev(logs) - 0.5) < 0.02


def test_seconds_are_floats_clipped_to_zero():
    d = parse_seconds("normal:0.1:1")
    xs = d.samples(1000, seed=0)
    assert all(isinstance(x, float) and x >= 0 for x in xs)
    assert 0.0 in xs
    assert parse_seconds("0").sample(random.Random(0)) == 0.0
    assert parse_seconds("uniform:0.5:1.5").samples(1, seed=0)[0] != int(
        parse_seconds("uniform:0.5:1.5").samples(1, seed=0)[0]
    )


def test_passthrough_and_str():
    d = parse_distribution("uniform:1:9")
    assert parse_length(d) is d
    assert str(d) == "uniform:1:9"
