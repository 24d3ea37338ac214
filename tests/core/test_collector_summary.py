"""Collector + summarize against a numpy computation; exact master/worker merges via msgpack."""

from __future__ import annotations

import math
import random

import msgpack
import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from locust_llm.metrics.collector import LATENCY_METRICS, Collector, Window
from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.sketch import LogHistogram
from locust_llm.metrics.summary import PERCENTILES, interval_rows, summarize

T0 = 1_763_790_000.25  # an epoch second with a fraction


def make_results(
    n: int,
    seed: int,
    *,
    fail_every: int = 0,
    abort_every: int = 0,
    warmup: int = 0,
    usage_differs: bool = False,
    span_s: float = 8.0,
) -> list[LLMResult]:
    """Synthetic finished requests with known, self-consistent timings (ms)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t_start = T0 + rng.uniform(0, span_s)
        chunks = rng.choice([1, 1, 2, rng.randint(3, 80)])
        ttft = rng.lognormvariate(4.0, 0.6)
        itl = [rng.uniform(5.0, 40.0) for _ in range(chunks - 1)]
        e2e = ttft + sum(itl)
        out_tok = chunks if not usage_differs else max(1, chunks + rng.randint(-1, 7))
        r = LLMResult(
            name="POST /v1/chat/completions",
            model="m",
            id=f"chatcmpl-{i}",
            t_start=t_start,
            queue_time=rng.choice([0.0, rng.uniform(0.0, 3.0)]),
            ttft=ttft,
            ttft_content=ttft + rng.choice([0.0, rng.uniform(0.0, 30.0)]),
            itl=itl,
            e2e=e2e,
            stream_closed=e2e + 0.2,
            prompt_tokens=rng.randint(10, 500),
            output_tokens=out_tok,
            token_chunks=chunks,
            finish_reason="length",
            status=200,
        )
        if fail_every and i % fail_every == 1:
            r.error = rng.choice(
                ["HTTP 503: queue full", "truncated stream", "invalid JSON in stream chunk: {"]
            )
            r.ttft = r.ttft_content = r.e2e = None
            r.itl = []
            r.output_tokens = r.token_chunks = 0
            r.status = 503
        elif abort_every and i % abort_every == 2:
            r.aborted = True
            r.error = "aborted"
        if i < warmup:
            r.warmup = True
        out.append(r)
    return out


def reference(results: list[LLMResult], good=None) -> dict:
    """The summary computed directly with numpy, by vLLM's definitions."""
    rs = [r for r in results if not r.warmup]
    ok = [r for r in rs if r.error is None and not r.aborted]
    starts = [r.t_start for r in rs]
    ends = [
        r.t_start + ((r.e2e if r.e2e is not None else r.stream_closed) or 0.0) / 1000.0 for r in rs
    ]
    duration = max(ends) - min(starts) if rs else 0.0
    inp = sum(r.prompt_tokens or 0 for r in ok)
    out = sum(r.output_tokens for r in ok)
    samples = {
        "ttft": [r.ttft for r in ok if r.ttft is not None],
        "ttft_content": [r.ttft_content for r in ok if r.ttft_content is not None],
        "e2el": [r.e2e for r in ok if r.e2e is not None],
        "itl": [g for r in ok for g in r.itl],  # pooled: one sample per gap
        "tpot": [(r.e2e - r.ttft) / (r.output_tokens - 1) for r in ok if r.output_tokens > 1],
        "queue_time": [r.queue_time for r in rs],  # zeros included: not waiting is data too
    }
    errors: dict[str, int] = {}
    for r in rs:
        if r.error is not None and not r.aborted:
            errors[r.error] = errors.get(r.error, 0) + 1
    return {
        "duration": duration,
        "completed": len(ok),
        "failed": sum(1 for r in rs if r.error is not None and not r.aborted),
        "aborted": sum(1 for r in rs if r.aborted),
        "total_input_tokens": inp,
        "total_output_tokens": out,
        "request_throughput": len(ok) / duration if duration else 0.0,
        "output_throughput": out / duration if duration else 0.0,
        "total_token_throughput": (inp + out) / duration if duration else 0.0,
        "request_goodput": (sum(1 for r in ok if good(r)) / duration) if good else None,
        "samples": samples,
        "errors": errors,
    }


def vllm_peaks(ok: list[LLMResult]) -> tuple[float, int]:
    """vLLM's calculate_metrics peak block, transcribed: one token per chunk in 1 s buckets
    from the first successful start; a request active in every bucket from its start's to
    its end's (start + latency)."""
    st = [r.t_start for r in ok]
    lat = [r.e2e / 1000.0 for r in ok]
    min_start = min(st)
    max_end = max(a + b for a, b in zip(st, lat, strict=True))
    n = int(np.ceil(max_end - min_start)) + 1
    tokens = np.zeros(n)
    conc = np.zeros(n)
    for r, start, latency in zip(ok, st, lat, strict=True):
        times = [start + r.ttft / 1000.0]
        cur = times[0]
        for g in r.itl:
            cur += g / 1000.0
            times.append(cur)
        for t in times:
            k = int(t - min_start)
            if 0 <= k < n:
                tokens[k] += 1
        for k in range(int(start - min_start), int(start + latency - min_start) + 1):
            conc[k] += 1
    return float(np.max(tokens)), int(np.max(conc))


def tokens_per_second(results: list[LLMResult]) -> dict[int, int]:
    """1 s buckets of token arrival times; chunk i of c carries ⌊(i+1)n/c⌋ − ⌊in/c⌋ tokens."""
    per: dict[int, int] = {}
    for r in results:
        if r.warmup or r.error is not None or r.aborted or r.ttft is None:
            continue
        times = [r.t_start + r.ttft / 1000.0]
        for g in r.itl:
            times.append(times[-1] + g / 1000.0)
        n, c = r.output_tokens, r.token_chunks
        assert len(times) == c
        for i, t in enumerate(times):
            per[int(t)] = per.get(int(t), 0) + (i + 1) * n // c - i * n // c
    return per


def collect(results: list[LLMResult], good=None) -> Collector:
    c = Collector(good=good)
    for r in results:
        c.add(r)
    return c


def assert_metric_matches(s: dict, name: str, values: list[float]) -> None:
    x = np.array(values, dtype=float)
    assert s[f"count_{name}"] == len(x)
    if not len(x):
        assert s[f"mean_{name}_ms"] == 0.0 and s[f"p99_{name}_ms"] == 0.0
        return
    assert s[f"mean_{name}_ms"] == pytest.approx(float(np.mean(x)), rel=1e-12)
    assert s[f"std_{name}_ms"] == pytest.approx(float(np.std(x)), rel=1e-9, abs=1e-9)
    assert s[f"min_{name}_ms"] == float(x.min())
    assert s[f"max_{name}_ms"] == float(x.max())
    keys = {p: f"p{p:g}_{name}_ms" for p in PERCENTILES}
    keys[50.0] = f"median_{name}_ms"
    for p, key in keys.items():
        lo = float(np.quantile(x, p / 100, method="lower"))
        hi = float(np.quantile(x, p / 100, method="higher"))
        assert lo * 0.99 <= s[key] <= hi * 1.01, (key, s[key], lo, hi)
    assert s[f"median_{name}_ms"] == s[f"p50_{name}_ms"]


VLLM_FIELDS = [
    "duration",
    "completed",
    "failed",
    "total_input_tokens",
    "total_output_tokens",
    "request_throughput",
    "request_goodput",
    "output_throughput",
    "total_token_throughput",
    "max_output_tokens_per_s",
    "max_concurrent_requests",
] + [
    f"{stat}_{m}_ms"
    for m in ("ttft", "tpot", "itl", "e2el")
    for stat in ("mean", "median", "std", "p50", "p90", "p95", "p99", "p99.9")
]


def _good(r: LLMResult) -> bool:
    return r.ttft is not None and r.ttft < 60.0 and (r.tpot is None or r.tpot < 25.0)


@pytest.mark.parametrize("usage_differs", [False, True])
def test_summary_matches_numpy(usage_differs):
    results = make_results(
        600, seed=1, fail_every=9, abort_every=13, warmup=25, usage_differs=usage_differs
    )
    s = summarize(collect(results, good=_good))
    ref = reference(results, good=_good)
    for f in VLLM_FIELDS:
        assert f in s, f
    for f in (
        "completed",
        "failed",
        "aborted",
        "total_input_tokens",
        "total_output_tokens",
    ):
        assert s[f] == ref[f], f
    for f in (
        "duration",
        "request_throughput",
        "output_throughput",
        "total_token_throughput",
        "request_goodput",
    ):
        assert s[f] == pytest.approx(ref[f], rel=1e-12), f
    assert s["total_requests"] == ref["completed"] + ref["failed"] + ref["aborted"]
    # aborted (client-side stop) is not a server error
    assert s["error_rate"] == ref["failed"] / (ref["completed"] + ref["failed"])
    for m, values in ref["samples"].items():
        assert_metric_matches(s, m, values)
    per_sec = tokens_per_second(results)
    assert sum(per_sec.values()) == ref["total_output_tokens"]
    # vLLM's peaks exactly: the collector keeps the event times while the run can afford it
    ok = [r for r in results if not r.warmup and r.error is None and not r.aborted]
    peak_tok, peak_conc = vllm_peaks(ok)
    assert s["max_output_tokens_per_s"] == peak_tok
    assert s["max_concurrent_requests"] == peak_conc
    assert {row["t"]: row["output_tokens"] for row in s["intervals"] if row["output_tokens"]} == {
        t: n for t, n in per_sec.items() if n
    }
    assert s["errors"] == ref["errors"]
    assert list(s["errors"].values()) == sorted(s["errors"].values(), reverse=True)
    assert s["started_at"] == min(r.t_start for r in results if not r.warmup)
    assert s["ended_at"] == pytest.approx(s["started_at"] + s["duration"], abs=1e-6)
    orjson.dumps(s)  # the summary is JSON-serialisable as is


def test_known_values_by_hand():
    """Two requests whose metrics are easy to work out on paper."""
    a = LLMResult(
        "r", t_start=T0, ttft=100.0, ttft_content=120.0, itl=[10.0, 20.0, 30.0], e2e=160.0,
        prompt_tokens=10, output_tokens=4, token_chunks=4,
    )  # fmt: skip
    b = LLMResult(
        "r", t_start=T0 + 1.0, ttft=200.0, ttft_content=200.0, itl=[40.0], e2e=240.0,
        prompt_tokens=20, output_tokens=2, token_chunks=2,
    )  # fmt: skip
    s = summarize(collect([a, b]))
    assert s["duration"] == pytest.approx(1.24)
    assert s["completed"] == 2 and s["failed"] == 0
    assert s["total_input_tokens"] == 30 and s["total_output_tokens"] == 6
    assert s["request_throughput"] == pytest.approx(2 / 1.24)
    assert s["output_throughput"] == pytest.approx(6 / 1.24)
    assert s["total_token_throughput"] == pytest.approx(36 / 1.24)
    assert s["mean_ttft_ms"] == pytest.approx(150.0)
    assert s["std_ttft_ms"] == pytest.approx(50.0)
    assert s["mean_ttft_content_ms"] == pytest.approx(160.0)
    # ITL pooled per gap: (10+20+30+40)/4, not the mean of per-request means (22.5... no: 30)
    assert s["mean_itl_ms"] == pytest.approx(25.0)
    # TPOT per request: (160-100)/3 = 20 and (240-200)/1 = 40
    assert s["mean_tpot_ms"] == pytest.approx(30.0)
    assert s["mean_e2el_ms"] == pytest.approx(200.0)
    # two samples: rank 0.999 lies between them; the sketch gives the lower one (±1 %)
    assert 160.0 * 0.99 <= s["p99.9_e2el_ms"] <= 240.0 * 1.01
    assert s["max_e2el_ms"] == 240.0
    assert s["request_goodput"] is None
    # tokens: a's 4 arrive in second T0 (at .35 .36 .38 .41), b's 2 in T0+1 (.45, .49)
    assert s["max_output_tokens_per_s"] == 4.0
    rows = {row["t"]: row for row in s["intervals"]}
    assert rows[int(T0)]["output_tokens"] == 4 and rows[int(T0) + 1]["output_tokens"] == 2
    assert rows[int(T0)]["requests"] == 1 and rows[int(T0)]["input_tokens"] == 10


def test_single_token_requests_have_no_tpot_or_itl():
    r = LLMResult("r", t_start=T0, ttft=50.0, e2e=50.0, output_tokens=1, token_chunks=1)
    assert r.tpot is None
    s = summarize(collect([r]))
    assert s["count_tpot"] == 0 and s["count_itl"] == 0 and s["mean_tpot_ms"] == 0.0
    assert s["mean_ttft_ms"] == 50.0


# -- distribution: workers -> master through msgpack ---------------------------------------


def _wire(delta: dict) -> dict:
    """Locust's transport: msgpack (tuples come back as lists)."""
    return msgpack.unpackb(msgpack.packb(delta, use_bin_type=True), raw=False)


def run_distributed(results: list[LLMResult], workers: int, seed: int, good=None) -> Collector:
    rng = random.Random(seed)
    ws = [Collector(good=good) for _ in range(workers)]
    master = Collector(good=good)
    for r in results:
        ws[rng.randrange(workers)].add(r)
        if rng.random() < 0.05:  # a periodic report from some worker
            w = rng.choice(ws)
            master.merge_delta(_wire(w.take_delta()))
    for w in ws:
        master.merge_delta(_wire(w.take_delta()))
        assert w.take_delta() == {}  # nothing left after the final report
    return master


def _canon(s: dict) -> bytes:
    return orjson.dumps(s, option=orjson.OPT_SORT_KEYS, default=lambda b: bytes(b).hex())


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("usage_differs", [False, True])
def test_split_across_workers_gives_identical_summary(workers, usage_differs):
    results = make_results(
        500, seed=workers, fail_every=7, abort_every=11, warmup=10, usage_differs=usage_differs
    )
    local = summarize(collect(results, good=_good), meta={"run": 1})
    dist = summarize(run_distributed(results, workers, seed=5, good=_good), meta={"run": 1})
    assert _canon(dist) == _canon(local)  # identical, field by field, bit by bit


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 60),
    st.integers(0, 10_000),
    st.integers(2, 3),
    st.booleans(),
)
def test_split_identity_property(n, seed, workers, usage_differs):
    results = make_results(
        n, seed=seed, fail_every=5, abort_every=7, usage_differs=usage_differs, span_s=3.0
    )
    local = summarize(collect(results))
    dist = summarize(run_distributed(results, workers, seed=seed))
    assert _canon(dist) == _canon(local)


def test_window_roundtrip_through_msgpack():
    c = collect(make_results(50, seed=3, fail_every=4, usage_differs=True))
    for sec, w in c.windows.items():
        w2 = Window.from_dict(_wire(w.to_dict()))
        assert _canon(w2.to_dict()) == _canon(w.to_dict()), sec
    empty = Window.from_dict(_wire(Window().to_dict()))
    assert empty.first_start == math.inf and empty.last_end == -math.inf


def test_delta_only_ships_changed_windows():
    c = Collector()
    r1, r2 = make_results(2, seed=9, span_s=0.0)
    c.add(r1)
    d1 = c.take_delta()
    assert [k for k in d1 if k != "groups"] == [str(int(r1.t_start))]  # groups: their own key
    assert c.take_delta() == {}
    c.add(r2)
    d2 = c.take_delta()
    master = Collector()
    master.merge_delta(_wire(d1))
    master.merge_delta(_wire(d2))
    assert _canon(summarize(master)) == _canon(summarize(collect([r1, r2])))


# -- warm-up, errors, reset, windows, in-flight --------------------------------------------


def test_warmup_results_are_excluded():
    results = make_results(40, seed=4)
    for r in results[:10]:
        r.warmup = True
        r.t_start -= 100.0  # long before the measured window: must not stretch duration
    s = summarize(collect(results))
    assert _canon(summarize(collect(results[10:]))) == _canon(s)
    assert s["completed"] == 30
    assert s["started_at"] == min(r.t_start for r in results[10:])


def test_errors_counted_by_message_and_capped():
    c = Collector()
    for i in range(150):
        c.add(LLMResult("r", t_start=T0, error=f"HTTP 500: boom {i}", status=500))
    for _ in range(5):
        c.add(LLMResult("r", t_start=T0, error="HTTP 500: boom 3", status=500))
    c.add(LLMResult("r", t_start=T0 + 1, error="HTTP 401: no", status=401))
    c.add(LLMResult("r", t_start=T0, aborted=True, error="stopped"))
    s = summarize(c)
    assert s["failed"] == 156 and s["aborted"] == 1 and s["completed"] == 0
    assert s["errors"]["HTTP 500: boom 3"] == 6
    assert s["errors"]["HTTP 401: no"] == 1
    assert s["errors"]["other errors"] == 50  # at most 100 distinct messages per window
    assert "stopped" not in s["errors"]
    assert sum(s["errors"].values()) == 156
    assert next(iter(s["errors"])) == "other errors"  # most frequent first
    assert s["error_rate"] == 1.0  # 156 failed of 156 (the aborted one is not counted)
    assert s["request_throughput"] == 0.0


def test_reset_forgets_everything():
    c = collect(make_results(30, seed=5, fail_every=3))
    c.reset()
    s = summarize(c)
    assert s["completed"] == s["failed"] == s["total_output_tokens"] == 0
    assert s["duration"] == 0.0 and s["request_throughput"] == 0.0
    assert s["errors"] == {} and s["intervals"] == []
    assert s["started_at"] is None and s["ended_at"] is None
    for m in LATENCY_METRICS:
        assert s[f"count_{m}"] == 0 and s[f"p99_{m}_ms"] == 0.0
    assert c.take_delta() == {}
    # and it collects again afterwards
    r = make_results(1, seed=6)[0]
    c.add(r)
    assert summarize(c)["completed"] == 1


def test_empty_summary():
    s = summarize(Collector(), include_intervals=False, include_histograms=False)
    assert s["duration"] == 0.0 and s["max_output_tokens_per_s"] == 0.0
    assert "intervals" not in s and "histograms" not in s
    assert s["meta"] == {}
    orjson.dumps(s)


def test_histograms_in_summary_remerge():
    results = make_results(100, seed=8)
    s = summarize(collect(results))
    h = LogHistogram.from_dict(orjson.loads(orjson.dumps(s["histograms"]["itl"])))
    x = [g for r in results for g in r.itl]
    assert h.count == len(x)
    assert h.mean == pytest.approx(float(np.mean(x)), rel=1e-12)


def test_merged_time_range_and_intervals():
    results = make_results(200, seed=10, fail_every=6)
    c = collect(results)
    lo = int(T0) + 2
    hi = int(T0) + 5
    w = c.merged(lo, hi)

    def end(r):  # the second a request finished in: its window
        return int(r.t_start + ((r.e2e if r.e2e is not None else r.stream_closed) or 0) / 1000)

    inside = [r for r in results if lo <= end(r) < hi]
    assert w.completed + w.failed == len(inside)
    rows = interval_rows(c)
    secs = [row["t"] for row in rows]
    assert secs == list(range(secs[0], secs[-1] + 1))  # contiguous seconds, gaps filled
    assert sum(row["requests"] for row in rows) == sum(1 for r in results if r.ok)
    assert sum(row["failed"] for row in rows) == sum(1 for r in results if not r.ok)
    total = sum(r.output_tokens for r in results if r.ok)
    assert sum(row["output_tokens"] for row in rows) == pytest.approx(total)


def test_inflight_tracking():
    c = Collector()
    for i in range(5):
        c.request_started(T0 + i * 0.1)
    for _ in range(3):
        c.request_finished(T0 + 0.6)
    c.request_started(T0 + 1.5)
    for _ in range(3):
        c.request_finished(T0 + 3.2)
    assert c.inflight == 0
    s = summarize(c)
    assert s["max_inflight_requests"] == 5
    rows = {row["t"]: row["in_flight"] for row in s["intervals"]}
    # second 2 saw no start or finish: the 3 requests were in flight all along, not 0
    assert rows == {int(T0): 5, int(T0) + 1: 3, int(T0) + 2: 3, int(T0) + 3: 3}


def test_closed_loop_charts_are_steady():
    """16 users, each request 1.3 s, back to back: every full second has 16 in flight and
    about 16/1.3 completions (binned by when they finished, not when they started)."""
    c = Collector()
    t_end = T0 + 20
    events = []  # (time, 0 = finish first at a tie, request start time)
    for u in range(16):
        t = T0 + u * 0.08
        while t + 1.3 < t_end:
            events += [(t, 1, t), (t + 1.3, 0, t)]
            t += 1.3
    for when, kind, t in sorted(events):
        if kind:
            c.request_started(when)
            continue
        c.request_finished(when)
        c.add(
            LLMResult(
                "r",
                t_start=t,
                ttft=100.0,
                itl=[100.0] * 12,
                e2e=1300.0,
                output_tokens=13,
                token_chunks=13,
                prompt_tokens=1,
            )  # fmt: skip
        )
    rows = summarize(c)["intervals"]
    assert rows[0]["partial"] and rows[-1]["partial"]
    full = [r for r in rows if not r["partial"]][2:-1]  # past the ramp and before the tail
    assert all(r["in_flight"] == 16 for r in full), [r["in_flight"] for r in full]
    assert all(11 <= r["requests"] <= 14 for r in full), [r["requests"] for r in full]
    assert all(r["ttft_p50_ms"] == 100.0 for r in full)


# -- LLMResult -----------------------------------------------------------------------------


def test_llmresult_tpot_ok_and_record():
    r = LLMResult("POST /v1/chat/completions", ttft=100.0, e2e=400.0, output_tokens=4)
    assert r.tpot == pytest.approx(100.0)
    assert r.ok
    assert LLMResult("x", ttft=None, e2e=400.0, output_tokens=4).tpot is None
    assert LLMResult("x", ttft=1.0, e2e=None, output_tokens=4).tpot is None
    assert LLMResult("x", ttft=1.0, e2e=2.0, output_tokens=0).tpot is None
    assert not LLMResult("x", error="e").ok
    assert not LLMResult("x", aborted=True).ok
    r.id, r.t_start, r.itl, r.text = "chatcmpl-1", T0, [10.0, 20.0], "secret text"
    rec = orjson.loads(r.to_json_line())
    assert r.to_json_line().endswith(b"\n") and r.to_json_line().count(b"\n") == 1
    for key in (
        "id", "name", "model", "t_start", "queue_time", "ttft", "ttft_content", "itl", "e2e",
        "stream_closed", "prompt_tokens", "output_tokens", "token_chunks", "finish_reason",
        "status", "error", "aborted",
    ):  # fmt: skip
        assert key in rec, key
    assert "text" not in rec
    assert rec["itl"] == [10.0, 20.0] and rec["t_start"] == T0 and rec["ttft_content"] is None
    assert LLMResult("x").itl is not LLMResult("y").itl  # no shared default list


def test_inflight_peak_not_doubled_when_a_second_is_shipped_twice():
    worker, master = Collector(), Collector()
    for i in range(10):
        worker.request_started(T0 + 0.01 * i)
    master.merge_delta(worker.take_delta())  # a report in the middle of second T0
    worker.request_started(T0 + 0.5)  # 11 in flight now, same second
    master.merge_delta(worker.take_delta())
    s = summarize(master)
    assert s["max_inflight_requests"] == 11  # was 21: the second window added the full count


def test_peaks_survive_compaction_of_old_seconds():
    def run(full_resolution_s: int) -> dict:
        c = Collector(full_resolution_s=full_resolution_s)
        for sec in range(30):
            n = 50 if sec == 3 else 5  # the busy second is long compacted by the end
            for k in range(n):
                r = LLMResult("x", t_start=T0 + sec + k / 100, ttft=10.0, itl=[1.0] * 9,
                              output_tokens=10, token_chunks=10, prompt_tokens=1)  # fmt: skip
                r.e2e = 19.0
                c.add(r)
        return summarize(c)

    full, compacted = run(1000), run(5)
    assert compacted["max_output_tokens_per_s"] == full["max_output_tokens_per_s"] >= 500
    assert compacted["max_concurrent_requests"] == full["max_concurrent_requests"]
    assert compacted["completed"] == full["completed"] == 50 + 29 * 5
    assert compacted["p99_ttft_ms"] == full["p99_ttft_ms"]


def test_peak_tokens_per_s_counts_chunks_as_vllm_does():
    """Speculative decoding: 10 chunks carrying 25 tokens in one second. vLLM's peak is 10
    (one per chunk); the usage-based peak is a separate field."""
    r = LLMResult(
        "r", t_start=T0, ttft=50.0, itl=[20.0] * 9, e2e=230.0,
        output_tokens=25, token_chunks=10, prompt_tokens=1,
    )  # fmt: skip
    s = summarize(collect([r]))
    assert s["max_output_tokens_per_s"] == 10.0
    assert s["max_output_tokens_per_s_by_tokens"] == 25.0


def test_short_requests_count_in_max_concurrent_requests():
    """Five 30 ms requests one after the other in one second: vLLM's per-second count is 5
    (each is active in that bucket); a 100 ms sweep saw at most 1 or none."""
    rs = [
        LLMResult(
            "r",
            t_start=T0 + 0.1 * i,
            ttft=10.0,
            itl=[20.0],
            e2e=30.0,
            output_tokens=2,
            token_chunks=2,
            prompt_tokens=1,
        )  # fmt: skip
        for i in range(5)
    ]
    s = summarize(collect(rs))
    assert s["max_concurrent_requests"] == vllm_peaks(rs)[1] == 5


def _edge_results(n: int = 300, seed: int = 7) -> list[LLMResult]:
    """Requests whose chunks land within a millisecond of vLLM's 1 s bucket edges (which
    are counted from the first start, a float with sub-millisecond digits)."""
    rng = np.random.default_rng(seed)
    t0 = 1_763_790_000.0004
    out = []
    for i in range(n):
        start = t0 + i * 0.0137 + rng.uniform(0, 1e-4)
        if i == 0:
            start = t0
        edge = math.ceil(start - t0 + 0.05) + t0  # the next bucket edge after the start
        ttft = (edge - start) * 1000.0 + rng.choice([-0.0004, 0.0004])  # ±0.4 µs off it
        itl = list(rng.choice([999.9995, 1000.0005, 0.0006], size=4))
        e2e = ttft + sum(itl)
        out.append(
            LLMResult("r", t_start=start, ttft=ttft, itl=itl, e2e=e2e, output_tokens=5,
                      prompt_tokens=3, token_chunks=5)
        )  # fmt: skip
    return out


def test_vllm_peaks_are_exact_at_bucket_edges_and_through_workers() -> None:
    results = _edge_results()
    peak_tok, peak_conc = vllm_peaks(results)
    local = Collector()
    for r in results:
        local.add(r)
    s = summarize(local)
    assert (s["max_output_tokens_per_s"], s["max_concurrent_requests"]) == (peak_tok, peak_conc)
    # the millisecond slots alone would be off here: the test's data is near the edges
    local.exact_events = False
    approx = summarize(local)
    assert (approx["max_output_tokens_per_s"], approx["max_concurrent_requests"]) != (
        peak_tok,
        peak_conc,
    )
    # two workers shipping deltas through msgpack to a master: the same numbers
    import msgpack

    master, workers = Collector(), [Collector(), Collector()]
    for i, r in enumerate(results):
        workers[i % 2].add(r)
        if i % 50 == 0:
            for w in workers:
                master.merge_delta(
                    msgpack.unpackb(msgpack.packb(w.take_delta()), strict_map_key=False)
                )
    for w in workers:
        master.merge_delta(msgpack.unpackb(msgpack.packb(w.take_delta()), strict_map_key=False))
    m = summarize(master)
    assert (m["max_output_tokens_per_s"], m["max_concurrent_requests"]) == (peak_tok, peak_conc)


def test_past_the_event_cap_peaks_fall_back_to_millisecond_slots() -> None:
    results = _edge_results()
    c = Collector(event_cap=100)
    for r in results:
        c.add(r)
    assert c.events() is None and not c.exact_events
    assert all(w.chunk_times is None for w in c.windows.values())
    peak_tok, peak_conc = vllm_peaks(results)
    s = summarize(c)
    # off by at most the events that lie within a millisecond of a bucket edge
    t0 = results[0].t_start
    near = 0
    for r in results:
        t = r.t_start + r.ttft / 1000.0
        for g in [0.0, *r.itl]:
            t += g / 1000.0
            near += min((t - t0) % 1.0, 1.0 - (t - t0) % 1.0) < 0.001
    assert 0 < abs(s["max_output_tokens_per_s"] - peak_tok) <= near
    assert abs(s["max_concurrent_requests"] - peak_conc) <= len(results)


def test_a_worker_that_compacted_before_its_first_report_ships_everything() -> None:
    """Seconds compacted before the collector learnt it ships (its first take_delta) still
    reach the master: counts, samples and token slots."""
    worker, master, local = Collector(), Collector(), Collector()
    rs = [
        LLMResult("r", t_start=T0 + i, ttft=10.0, itl=[5.0, 5.0], e2e=20.0, output_tokens=3,
                  prompt_tokens=2, token_chunks=3)
        for i in (0, 1, 2, 400, 401)
    ]  # fmt: skip
    for r in rs:
        worker.add(r)
        local.add(r)
    assert worker.archive  # the second at +400 s compacted the first ones
    master.merge_delta(msgpack.unpackb(msgpack.packb(worker.take_delta()), strict_map_key=False))
    got, want = summarize(master), summarize(local)
    for f in (
        "completed",
        "total_output_tokens",
        "count_itl",
        "p99_itl_ms",
        "max_output_tokens_per_s",
    ):
        assert got[f] == want[f], f
    assert sum(master.tokens_per_second().values()) == 15


def test_errors_count_by_stable_key_with_one_example():
    # a server echoing a payload preview in every 500 must not split the count in thousands
    from locust_llm.errors import HTTP, TRANSPORT, fail
    from locust_llm.metrics.collector import Collector
    from locust_llm.metrics.summary import summarize

    c = Collector()
    for i in range(150):
        r = LLMResult(name="x", t_start=1_700_000_000 + i % 3, status=500)
        fail(r, HTTP, "HTTP 500", f"HTTP 500: prompt 'request {i}' too long")
        c.add(r)
    r = LLMResult(name="x", t_start=1_700_000_001)
    fail(r, TRANSPORT, "read timeout", "read timeout: no data for 5s")
    c.add(r)
    s = summarize(c)
    assert s["errors"] == {"HTTP 500": 150, "read timeout": 1}
    assert s["error_examples"]["HTTP 500"].startswith("HTTP 500: prompt 'request ")
    assert s["error_examples"]["read timeout"] == "read timeout: no data for 5s"
