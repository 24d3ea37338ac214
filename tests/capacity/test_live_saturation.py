"""Saturation noticed while the run goes: a real Collector fed second by second, checked the
way the once-a-second greenlet does."""

from __future__ import annotations

import logging

from locust_llm.metrics.collector import Collector
from locust_llm.metrics.live_saturation import TAIL_S, LiveSaturation, tail_rows
from locust_llm.metrics.saturation import detect

T0 = 1_700_000_000


def _feed(c: Collector, sec: int, starts: int, finishes: int, ttft: float) -> None:
    from locust_llm.metrics.record import LLMResult

    for i in range(starts):
        c.request_started(sec + i / (starts + 1))
    for i in range(finishes):
        t = sec + 0.5 + i / (finishes + 2) / 2
        c.add(
            LLMResult(
                name="x", t_start=t - ttft / 1000 - 0.1, ttft=ttft, ttft_content=ttft,
                itl=[10.0] * 5, e2e=ttft + 50, prompt_tokens=10, output_tokens=6,
                token_chunks=6, status=200,
            )
        )  # fmt: skip
        c.request_finished(t)


def _run(grow: bool, seconds: int = 60) -> tuple[LiveSaturation, list[int], Collector]:
    c = Collector()
    live = LiveSaturation(c, lambda: float(T0 + 1))
    fired_checks = []
    for k in range(seconds):
        sec = T0 + k
        # an overloaded server: 10 arrive, 6 leave each second, waiting time climbs
        if grow:
            _feed(c, sec, 10, 6, 100.0 + 40.0 * k)
        else:
            _feed(c, sec, 8, 8, 100.0 + (k % 3))
        if live.check(sec + 1.5) is not None:
            fired_checks.append(k)
    return live, fired_checks, c


def test_growing_queue_fires_once_during_the_run_and_logs_it(caplog):
    with caplog.at_level(logging.WARNING, logger="locust_llm"):
        live, fired, c = _run(grow=True)
    assert live.verdict is not None and live.verdict.detected
    assert fired and fired[0] < 40  # noticed well before the run ends
    assert sum("SATURATED (live" in r.getMessage() for r in caplog.records) == 1
    assert live.to_json()["detected"] and live.to_json()["live"]
    # the live verdict is the one the full detector gives on the seconds seen so far
    full = detect(c.rows()[: fired[0] + 1], start_after=T0 + 1)
    assert full.detected and full.at_t == live.verdict.at_t


def test_steady_run_never_fires():
    live, fired, _ = _run(grow=False)
    assert live.verdict is None and not fired
    assert live.to_json() == {"detected": False, "live": True}


def test_tail_rows_match_the_collectors_rows_and_stay_short():
    _, _, c = _run(grow=False, seconds=40)
    full = {r["t"]: r for r in c.rows()}
    tail = tail_rows(c, T0 + 40 - TAIL_S, T0 + 39)
    assert len(tail) == TAIL_S - 1
    for r in tail:
        assert r["in_flight"] == full[r["t"]]["in_flight"]
        assert r["ttft_p50_ms"] == full[r["t"]]["ttft_p50_ms"]


def test_no_check_before_the_load_is_steady():
    c = Collector()
    live = LiveSaturation(c, lambda: None)
    _feed(c, T0, 10, 6, 100.0)
    assert live.check(T0 + 30) is None


def test_cached_rows_follow_a_late_result_into_a_kept_second():
    """A row kept from the last check is recomputed once its second gets another result
    (a worker's late report), and equals the uncached row then."""
    c = Collector()
    for k in range(20):
        _feed(c, T0 + k, 8, 8, 100.0)
    cache: dict = {}
    first = tail_rows(c, T0 + 5, T0 + 15, cache)
    assert first == tail_rows(c, T0 + 5, T0 + 15)
    assert set(cache) == set(range(T0 + 5, T0 + 15))
    kept = cache[T0 + 10][1]
    assert tail_rows(c, T0 + 5, T0 + 15, cache)[5] is kept  # unchanged: not recomputed
    _feed(c, T0 + 10, 0, 3, 900.0)  # late, slow results land in a second already kept
    again = tail_rows(c, T0 + 5, T0 + 15, cache)
    assert again == tail_rows(c, T0 + 5, T0 + 15)
    assert again[5]["ttft_p95_ms"] > kept["ttft_p95_ms"]
