import pytest

from locust_llm.workload.warmup import Warmup, in_warmup


def test_predicate():
    assert in_warmup(100.5, 50, start=100.0, seconds=1.0)
    assert not in_warmup(101.0, 50, start=100.0, seconds=1.0)
    assert in_warmup(200.0, 2, start=100.0, requests=3)
    assert not in_warmup(200.0, 3, start=100.0, requests=3)
    assert not in_warmup(100.0, 0, start=100.0)


def test_counter_by_requests_and_share():
    w = Warmup(requests=5, share=2)  # 3 per process
    assert [w.classify(10.0 + i) for i in range(5)] == [True, True, True, False, False]
    w.begin(0.0)
    assert w.classify(50.0) is True


def test_counter_by_seconds_defaults_start_to_first_request():
    w = Warmup(seconds=2.0)
    assert w.enabled
    assert w.classify(1000.0) and w.classify(1001.9)
    assert not w.classify(1002.0)
    assert not Warmup().enabled


def test_rejects_negative():
    with pytest.raises(ValueError):
        Warmup(seconds=-1)
