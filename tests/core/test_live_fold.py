"""The live view's fold: at every poll the same numbers as folding every window afresh (the
end-of-run summary), while a poll folds only the seconds that are new or still open."""

from __future__ import annotations

import random

import msgpack
import orjson
import pytest

from locust_llm.metrics import rollup as fold_mod
from locust_llm.metrics.collector import Collector
from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.rollup import SEAL_S, LiveFold
from locust_llm.metrics.summary import summarize

T0 = 1_763_790_000.25


def _result(rng: random.Random, t_start: float, long: bool = False) -> LLMResult:
    chunks = rng.choice([1, 2, rng.randint(3, 40)])
    ttft = rng.lognormvariate(4.0, 0.5) + (30_000.0 if long else 0.0)
    itl = [rng.uniform(5.0, 40.0) for _ in range(chunks - 1)]
    e2e = ttft + sum(itl)
    r = LLMResult(name="x", model="m", t_start=t_start, ttft=ttft, ttft_content=ttft, itl=itl,
                  e2e=e2e, stream_closed=e2e, prompt_tokens=rng.randint(1, 300),
                  output_tokens=chunks + rng.randint(0, 3), token_chunks=chunks,
                  finish_reason="length", status=200, queue_time=rng.uniform(0, 2))  # fmt: skip
    if rng.random() < 0.05:
        r.error, r.status, r.e2e, r.ttft, r.itl = "HTTP 503: queue full", 503, None, None, []
        r.ttft_content, r.token_chunks, r.output_tokens = None, 0, 0
    return r


def _summary(c: Collector, fold=None) -> bytes:
    s = summarize(c, include_intervals=False, include_histograms=False, fold=fold)
    return orjson.dumps(s, option=orjson.OPT_SORT_KEYS)


def _second(c: Collector, rng: random.Random, sec: int, rps: int = 6) -> None:
    for i in range(rps):
        t = T0 + sec + i / rps
        c.request_started(t)
        r = _result(rng, t)
        c.add(r)
        c.request_finished(t + (r.e2e or 0.0) / 1000.0)


class Poller:
    """The dashboard's side of an incremental poll: keeps its rows, asks with the epoch and
    sequence number of the view it last saw, replaces the rows from ``changed_since`` on."""

    def __init__(self, live: LiveFold) -> None:
        self.live, self.rows, self.seen = live, [], None
        self.full = self.partial = 0  # polls answered with every row / with a tail
        self.sent: list[int] = []  # rows each tail held

    def poll(self) -> list[dict]:
        v = self.live.view()
        start = None if self.seen is None else self.live.changed_since(*self.seen)
        if start is None:
            self.rows, self.full = v.chart_rows(), self.full + 1
        else:
            tail = v.chart_rows(start)
            self.rows = [r for r in self.rows if r["t"] < start] + tail
            self.partial += 1
            self.sent.append(len(tail))
        self.seen = (self.live.epoch, self.live.seq)
        return self.rows


def _polled_run(c: Collector, seconds: int, poll_every: int, seed: int, late=None):
    """Feed ``seconds`` of requests; poll the live fold every ``poll_every`` s, and check
    it against a full fold each time (and the rows an incremental poller holds against the
    full fold's); ``late(sec, c, rng)`` may add out-of-order data."""
    rng = random.Random(seed)
    live = LiveFold(c)
    poller = Poller(live)
    for sec in range(seconds):
        _second(c, rng, sec)
        if late is not None:
            late(sec, c, rng)
        if sec % poll_every == 0:
            assert _summary(c, live.view()) == _summary(c), f"differs at second {sec}"
            assert live.view().chart_rows() == c.rows(), f"rows differ at second {sec}"
            assert poller.poll() == c.rows(), f"polled rows differ at second {sec}"
    assert _summary(c, live.view()) == _summary(c)
    assert poller.poll() == c.rows()
    return live


def test_every_poll_equals_the_end_of_run_fold_and_folds_only_new_seconds(monkeypatch):
    c = Collector(full_resolution_s=45)  # compaction happens during the run
    folded: list[int] = []
    real_add = fold_mod.Fold.add
    monkeypatch.setattr(fold_mod.Fold, "add", lambda self, w, sec=None: (
        folded.append(1), real_add(self, w, sec))[1])  # fmt: skip
    rng = random.Random(1)
    live = LiveFold(c)
    per_poll = []
    for sec in range(300):
        _second(c, rng, sec)
        if sec % 5 == 0:
            folded.clear()
            v = live.view()
            per_poll.append(len(folded))
            assert _summary(c, v) == _summary(c), f"differs at second {sec}"
            assert v.chart_rows() == c.rows()
    assert live.refolds == 1  # folded from scratch once, on the first poll
    # each poll folds the seconds still open and those sealed since the last poll, never
    # the history: bounded whatever the run's length
    assert max(per_poll[1:]) <= SEAL_S + 5 + 1
    assert summarize(c)["completed"] > 1500


@pytest.mark.parametrize("where", ["sealed", "compacted"])
def test_late_data_for_a_folded_second_is_noticed(where):
    """A request filed under a second folded long ago (a worker reporting late): the live
    view notices and folds again; the numbers stay those of a full fold."""
    back = SEAL_S + 5 if where == "sealed" else 120

    def late(sec, c, rng):
        if sec in (150, 200):
            r = _result(rng, T0 + sec - back)
            r.e2e, r.itl = 1.0, []
            c.add(r)

    live = _polled_run(Collector(full_resolution_s=60), 260, 4, seed=2, late=late)
    assert live.refolds >= 2


def test_an_earlier_first_success_moving_every_bucket_is_noticed():
    def late(sec, c, rng):
        if sec == 80:  # a request that started before everything else finishes now
            r = _result(rng, T0 - 70.0, long=True)
            r.error = None
            r.e2e = (sec + 70.0) * 1000.0
            c.add(r)

    live = _polled_run(Collector(), 120, 3, seed=3, late=late)
    assert live.refolds == 2


@pytest.mark.parametrize("caps", [{"exact_cap": 300}, {"event_cap": 2000}])
def test_samples_and_events_dropped_past_their_caps_mid_run(caps):
    c = Collector(**caps)
    _polled_run(c, 150, 3, seed=4)
    assert c.sketch_only or not c.exact_events


def test_master_merging_worker_reports():
    rng = random.Random(5)
    workers = [Collector(), Collector()]
    master = Collector()
    live = LiveFold(master)
    for sec in range(120):
        for i in range(6):
            t = T0 + sec + i / 6
            workers[i % 2].add(_result(rng, t))
        if sec % 3 == 0:
            for w in workers:
                delta = msgpack.unpackb(msgpack.packb(w.take_delta(), use_bin_type=True))
                master.merge_delta(delta)
            assert _summary(master, live.view()) == _summary(master)


def test_a_reset_starts_the_live_view_afresh():
    c = Collector()
    live = _polled_run(c, 60, 3, seed=6)
    c.reset()
    assert _summary(c, live.view()) == _summary(c)
    assert summarize(c, fold=live.view())["completed"] == 0
    rng = random.Random(7)
    for sec in range(100, 140):
        _second(c, rng, sec)
        assert _summary(c, live.view()) == _summary(c)


@pytest.mark.parametrize("poll_every", [2, SEAL_S + 7])
def test_an_incremental_poller_holds_every_row_of_a_full_fold(poll_every):
    """Requests that ran longer than the sealing age put tokens into seconds folded long
    ago; a poller (often, or more rarely than seconds seal) asks only for the rows that may
    have changed, and holds exactly the full fold's rows after every poll."""

    pending: list[tuple[int, LLMResult]] = []

    def late(sec, c, rng):
        if sec % 17 == 0 and sec > 60:  # a 44 s request starts now: a token every 2.1 s
            r = _result(rng, T0 + sec + 0.5)
            r.error, r.status, r.e2e, r.itl = None, 200, 44_000.0, [2100.0] * 20
            r.ttft = r.ttft_content = 2000.0
            r.token_chunks = r.output_tokens = 21
            c.request_started(r.t_start)
            pending.append((sec + 44, r))
        for _due, r in [p for p in pending if p[0] == sec]:  # it ends: tokens up to 42 s back
            c.add(r)
            c.request_finished(r.t_start + 44.0)

    rng = random.Random(8)
    c = Collector(full_resolution_s=90)  # compaction too
    live = LiveFold(c)
    poller = Poller(live)
    for sec in range(400):
        _second(c, rng, sec)
        late(sec, c, rng)
        if sec % poll_every == 0:
            assert poller.poll() == c.rows(), f"polled rows differ at second {sec}"
    assert live.refolds == 1 and poller.full == 1 and poller.partial > 10
    # what a poll gets is the tail that moved, not the run: the seconds since the last poll,
    # the open ones and the 44 s reach of the long requests' tokens
    assert max(poller.sent) <= poll_every + SEAL_S + 44 + 2 < len(poller.rows) / 3


def test_a_poller_of_another_epoch_or_an_unknown_view_gets_every_row():
    c = Collector()
    live = _polled_run(c, 40, 3, seed=9)
    assert live.changed_since(live.epoch, live.seq) == max(c.windows) + 1  # nothing new
    assert live.changed_since(live.epoch - 1, live.seq) is None
    assert live.changed_since(live.epoch, live.seq + 1) is None
    seen = (live.epoch, live.seq)
    c.reset()
    live.view()
    assert live.epoch != seen[0] and live.changed_since(*seen) is None  # reset: a new epoch
