import pytest

from locust_llm.workload.shapes import LinearRamp, StepSweep, parse_users


def test_step_sweep_ticks_and_phases():
    s = StepSweep("1,4,8", hold=10, warmup=2)
    assert s.duration == 36
    assert s.tick(0).locust() == (1, 8.0)
    assert s.tick(0).warmup and not s.tick(2.0).warmup
    assert s.tick(11.99).users == 1
    t = s.tick(12.0)
    assert (t.users, t.label, t.warmup) == (4, "users=4", True)
    assert s.tick(35.9).users == 8
    assert s.tick(36.0) is None
    ph = s.phases()
    assert [(p.label, p.start, p.measure_start, p.end) for p in ph] == [
        ("users=1", 0, 2, 12),
        ("users=4", 12, 14, 24),
        ("users=8", 24, 26, 36),
    ]


def test_step_sweep_without_warmup_and_custom_spawn_rate():
    s = StepSweep([2, 2, 16], hold=5, spawn_rate=3)
    assert not any(s.tick(t).warmup for t in range(15))
    assert s.tick(10).locust() == (16, 3.0)


def test_linear_ramp():
    r = LinearRamp(0, 100, 50, hold=10)
    assert r.tick(0).users == 0
    assert r.tick(25).users == 50
    assert r.tick(49.9).users == 100
    assert r.tick(55).label == "users=100"
    assert r.tick(60) is None
    assert r.spawn_rate == 2.0


@pytest.mark.parametrize("spec", ["1,x", "", "-1,2"])
def test_bad_users(spec):
    with pytest.raises(ValueError):
        parse_users(spec)


def test_bad_hold():
    with pytest.raises(ValueError):
        StepSweep([1], hold=0)
