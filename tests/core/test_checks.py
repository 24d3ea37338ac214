"""SLO expressions: parsing, units, evaluation, goodput (vLLM's --goodput semantics)."""

import pytest

from locust_llm.checks import SLOError, evaluate, format_rows, goodput_predicate, parse_slo
from locust_llm.metrics.record import LLMResult


@pytest.mark.parametrize(
    ("expr", "field", "op", "threshold"),
    [
        ("ttft_p95<=800ms", "p95_ttft_ms", "<=", 800.0),
        ("ttft_p95 <= 0.8s", "p95_ttft_ms", "<=", 800.0),
        ("itl_p99.9<60", "p99.9_itl_ms", "<", 60.0),
        ("e2e_median<=2s", "median_e2el_ms", "<=", 2000.0),
        ("tpot_mean<=50ms", "mean_tpot_ms", "<=", 50.0),
        ("error_rate<=1%", "error_rate", "<=", 0.01),
        ("error_rate<=0.01", "error_rate", "<=", 0.01),
        ("output_throughput>=500", "output_throughput", ">=", 500.0),
        ("client_own_stamp>=99%", "client_own_stamp", ">=", 0.99),
    ],
)
def test_parse(expr, field, op, threshold):
    slo = parse_slo(expr)
    assert (slo.field, slo.op) == (field, op) and slo.threshold == pytest.approx(threshold)


@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        ("ttft_p95<=fast", "cannot parse"),
        ("latency<=3ms", "unknown metric"),
        ("ttft_p95<=5%", "takes ms or s"),
        ("error_rate<=5ms", "ratio"),
        ("output_throughput>=5ms", "plain number"),
        ("ttft_p95==5ms", "cannot parse"),
    ],
)
def test_parse_errors_say_what_is_allowed(expr, needle):
    with pytest.raises(SLOError, match=needle):
        parse_slo(expr)


def test_evaluate_pass_fail_and_no_data_fails():
    slos = [parse_slo(x) for x in ("ttft_p95<=800ms", "itl_p99<=5ms", "tpot_p99<=5ms",
                                    "error_rate<=1%", "output_throughput>=100")]  # fmt: skip
    summary = {
        "p95_ttft_ms": 612.0, "count_ttft": 10,
        "p99_itl_ms": 7.5, "count_itl": 90,
        "p99_tpot_ms": 0.0, "count_tpot": 0,  # 1-token outputs: vLLM writes 0, there is no data
        "error_rate": 0.0, "output_throughput": 150.0,
    }  # fmt: skip
    rows = evaluate(slos, summary)
    assert [r["passed"] for r in rows] == [True, False, False, True, True]
    assert rows[2]["value"] is None
    lines = format_rows(rows)
    assert lines[0] == "PASS ttft_p95<=800ms (measured 612.00 ms)"
    assert lines[2] == "FAIL tpot_p99<=5ms (measured no data)"
    assert "0 %" in lines[3]


def test_goodput_uses_each_requests_own_latencies():
    good = goodput_predicate([parse_slo("ttft_p99<=100ms"), parse_slo("e2e_p99<=1s"),
                              parse_slo("output_throughput>=1")])  # fmt: skip
    fast = LLMResult("x", ttft=50.0, e2e=900.0, output_tokens=10)
    slow_first = LLMResult("x", ttft=150.0, e2e=900.0, output_tokens=10)
    slow_total = LLMResult("x", ttft=50.0, e2e=1500.0, output_tokens=10)
    assert good(fast) and not good(slow_first) and not good(slow_total)
    assert goodput_predicate([parse_slo("error_rate<=1%")]) is None


@pytest.mark.parametrize(
    "exprs, needle",
    [
        (["ttft_p97<=800ms"], "p97 is not measured"),
        (["request_goodput>=1"], "needs a latency SLO"),
        (["error_rate<=1"], "write 1%"),
        (["error_rate<=150%"], "between 0% and 100%"),
    ],
)
def test_slos_that_can_never_be_judged_are_refused_at_start(exprs, needle) -> None:
    from locust_llm.checks import check_slos

    with pytest.raises(SLOError, match=needle):
        check_slos(exprs)


def test_slo_sets_that_can_be_judged() -> None:
    from locust_llm.checks import check_slos, split_slos

    exprs = split_slos(["ttft_p99.9<=1s, request_goodput>=1", "error_rate<=0.5"])
    assert [s.expr for s in check_slos(exprs)] == [
        "ttft_p99.9<=1s",
        "request_goodput>=1",
        "error_rate<=0.5",
    ]


def test_every_slo_fails_on_a_run_with_no_completed_request():
    """All requests still streaming at the end: error_rate is 0 of 0, throughput 0 — nothing
    was measured, so no SLO may pass, and the row says why."""
    from locust_llm.metrics.collector import Collector
    from locust_llm.metrics.record import LLMResult
    from locust_llm.metrics.summary import summarize

    c = Collector()
    for i in range(4):
        c.add(LLMResult("r", t_start=1_763_790_000.0 + i, aborted=True, error="aborted"))
    s = summarize(c)
    assert s["completed"] == 0 and s["error_rate"] == 0.0
    assert "still streaming" in s["no_data_reason"] and "--stop-timeout" in s["no_data_reason"]
    rows = evaluate([parse_slo("error_rate<=1%"), parse_slo("failed<=0")], s)
    assert [r["passed"] for r in rows] == [False, False]
    line = format_rows(rows)[0]
    assert line.startswith("FAIL error_rate<=1% (measured no data: no request completed: all 4")
