"""Late token reads are called client-bound only when the client's own CPU explains them."""

from __future__ import annotations

import time

import pytest
from locust.env import Environment
from locust.event import Events

from locust_llm import plugin
from locust_llm.metrics.health import judge
from locust_llm.metrics.record import LLMResult

SYMPTOM = "client-bound: 40.0% of tokens shared a read (limit 1%). the load generator is ..."


def test_symptoms_with_a_busy_client_are_client_bound():
    v = judge(True, SYMPTOM, 0.8)
    assert v.client_bound is True and v.reason == SYMPTOM and v.delayed == ""


def test_symptoms_with_an_idle_client_are_a_delay_not_client_bound():
    v = judge(True, SYMPTOM, 0.099)
    assert v.client_bound is False and v.reason == ""
    assert "40.0% of tokens shared a read" in v.delayed and "only 10% of its CPU" in v.delayed
    assert "will not help" in v.delayed


def test_user_stamps_judge_by_cpu_only():
    assert judge(None, "", 0.95).client_bound is True
    assert judge(None, "", 0.5) == judge(None, "", None) == (judge(None, "", 0.1))
    assert judge(None, "", 0.5).client_bound is None
    assert judge(False, "", 0.99).client_bound is False


def test_late_reads_of_a_starved_client_name_the_run_queue():
    v = judge(True, SYMPTOM, 0.03, 0.85)
    assert v.client_bound is False and v.reason == ""
    assert "40.0% of tokens shared a read" in v.delayed
    assert "waited for one 85% of the time (run queue)" in v.delayed
    assert "taskset" in v.delayed
    # a wait of a healthy shared host keeps the plain delay message
    plain = judge(True, SYMPTOM, 0.03, 0.10)
    assert "run queue" not in plain.delayed and plain.delayed == judge(True, SYMPTOM, 0.03).delayed
    # a busy client stays client-bound whatever it waited; clean stamps stay clean
    assert judge(True, SYMPTOM, 0.8, 0.9).client_bound is True
    assert judge(False, "", 0.03, 0.9) == judge(False, "", 0.03)


def test_user_stamps_flag_a_starved_client_as_delayed():
    v = judge(None, "", 0.05, 0.5)
    assert v.client_bound is None and v.reason == ""
    assert "waited for a CPU 50% of the time" in v.delayed and "into TTFT and ITL" in v.delayed
    assert judge(None, "", 0.05, 0.2).delayed == ""
    assert judge(None, "", 0.95, 0.5).client_bound is True  # its own load comes first


def _kernel_result(t: float, shared: list[int]) -> LLMResult:
    r = LLMResult(name="/v1/chat/completions", model="m")
    r.t_start, r.ttft, r.itl = t, 50.0, [20.0] * 9
    r.e2e, r.output_tokens, r.token_chunks, r.prompt_tokens = 230.0, 10, 10, 5
    r.timestamps, r.shared, r.shared_reads, r.own_stamps = "kernel", shared, len(shared), 5
    r.read_lateness = [0.3] * 5
    return r


@pytest.mark.parametrize("cpu_share, bound", [(0.0, False), (0.8, True)])
def test_the_summary_blames_the_client_only_when_it_was_busy(cpu_share, bound):
    # half the tokens shared a read (what a busy host or a bursting server produces)
    env = Environment(events=Events())
    rt = plugin.runtime(env)
    now = time.time()
    for i in range(20):
        rt.collector.add(_kernel_result(now - 4 + i * 0.2, [2, 3, 4, 5, 6]))
    s0 = rt.summary()
    rt.cpu_start = time.process_time() - cpu_share * s0["duration"]
    s = rt.summary()
    assert s["client_bound"] is bound
    assert bool(s["client_read_delay"]) is not bound
    assert bool(s["client_bound_reason"]) is bound


def test_the_summary_reports_the_wait_for_a_cpu(monkeypatch):
    # the summary reads the wait from the kernel's schedstat: make it say 75 % of the run
    import locust_llm.runtime as runtime_mod

    env = Environment(events=Events())
    rt = plugin.runtime(env)
    now = time.time()
    for i in range(20):
        rt.collector.add(_kernel_result(now - 4 + i * 0.2, [2, 3, 4, 5, 6]))
    duration = rt.summary()["duration"]
    rt.runq_start = 10.0
    monkeypatch.setattr(runtime_mod, "runqueue_seconds", lambda: 10.0 + 0.75 * duration)
    s = rt.summary()
    assert s["client_runqueue_s"] == pytest.approx(0.75 * duration)
    assert s["client_runqueue_share"] == pytest.approx(0.75, rel=1e-3)
    assert s["client_bound"] is False and "(run queue)" in s["client_read_delay"]
    monkeypatch.setattr(runtime_mod, "runqueue_seconds", lambda: None)
    s = rt.summary()
    assert s["client_runqueue_s"] is None and s["client_runqueue_share"] is None
    assert "run queue" not in s["client_read_delay"]


def test_summary_and_verdict_are_pure():
    # the summary builder and the health verdict run in reports and tests without a network
    # stack: importing them must not pull in the timestamping socket or gevent's socket
    import subprocess
    import sys

    code = (
        "import sys; from locust_llm.metrics.summary import client_health; "
        "from locust_llm.metrics.collector import Window; w = Window(); w.stamped_tokens = 10; "
        "client_health(w, {'p99_read_lateness_ms': 1.0, 'median_itl_ms': 2.0}); "
        "bad = [m for m in ('locust_llm.timestamps.socket', 'gevent.socket') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
