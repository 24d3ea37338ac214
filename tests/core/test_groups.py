"""Groups by request name, model and turn: exact, mergeable, bounded, free with one value."""

from __future__ import annotations

import logging
import random

import msgpack
import numpy as np
import pytest

from locust_llm.metrics.collector import Collector
from locust_llm.metrics.groups import MAX_GROUPS, OTHER
from locust_llm.metrics.summary import summarize

from .test_collector_summary import make_results


def _wire(delta: dict) -> dict:
    return msgpack.unpackb(msgpack.packb(delta, use_bin_type=True), raw=False)


def _named(n: int, seed: int, names: list[str], switch_at: int = 0, **kw):
    """Results whose name is names[0] until ``switch_at``, then random among ``names``."""
    rng = random.Random(seed)
    rs = make_results(n, seed, **kw)
    for i, r in enumerate(rs):
        r.name = names[0] if i < switch_at else rng.choice(names)
        r.model = rng.choice(["a", "b"]) if i >= n // 3 else "a"
        r.turn = i % 3
    return rs


def _expect(results, kind, key):
    mine = [r for r in results if str(getattr(r, kind)) == key and not r.warmup]
    ok = [r for r in mine if r.ok]
    return mine, ok


@pytest.mark.parametrize("kind", ["name", "model", "turn"])
def test_group_figures_are_numpy_over_the_groups_requests(kind):
    results = _named(400, 3, ["x", "y", "z"], switch_at=150, fail_every=9, abort_every=13)
    c = Collector()
    for r in results:
        c.add(r)
    s = summarize(c)
    groups = s[f"by_{kind}"]
    assert sum(g["completed"] for g in groups.values()) == s["completed"]
    assert sum(g["failed"] for g in groups.values()) == s["failed"]
    assert sum(g["aborted"] for g in groups.values()) == s["aborted"]
    for key, g in groups.items():
        mine, ok = _expect(results, kind, key)
        assert g["completed"] == len(ok)
        assert g["total_requests"] == len(mine)
        ttft = [r.ttft for r in ok if r.ttft is not None]
        itl = [x for r in ok for x in r.exact_itl()]
        tpot = [r.tpot for r in ok if r.tpot is not None]
        for p in (50, 90, 99):
            assert g[f"p{p}_ttft_ms"] == float(np.percentile(ttft, p))
            assert g[f"p{p}_itl_ms"] == float(np.percentile(itl, p))
            assert g[f"p{p}_tpot_ms"] == float(np.percentile(tpot, p))
        assert g["total_output_tokens"] == sum(r.output_tokens for r in ok)
        span = max(r.t_start + r.e2e / 1000 for r in mine if r.e2e) - min(r.t_start for r in mine)
        assert g["output_throughput"] == pytest.approx(g["total_output_tokens"] / span, rel=1e-3)


def test_workers_with_one_name_each_still_give_groups_on_the_master():
    results = _named(300, 5, ["x"])
    for r in results[::2]:
        r.name = "y"
    wx, wy, master = Collector(), Collector(), Collector()
    for i, r in enumerate(results):
        (wx if r.name == "x" else wy).add(r)
        if i % 40 == 0:
            master.merge_delta(_wire(wx.take_delta()))
            master.merge_delta(_wire(wy.take_delta()))
    for w in (wx, wy):
        master.merge_delta(_wire(w.take_delta()))
        assert not w.groups.grouped("name")  # each worker alone saw one name: kept nothing
    local = Collector()
    for r in results:
        local.add(r)
    got, want = summarize(master)["by_name"], summarize(local)["by_name"]
    assert set(got) == {"x", "y"}
    for key in got:
        for f in ("completed", "p50_ttft_ms", "p99_itl_ms", "mean_tpot_ms", "total_output_tokens"):
            assert got[key][f] == pytest.approx(want[key][f], rel=1e-12), (key, f)


def test_a_single_value_keeps_no_group_windows():
    c = Collector()
    for r in make_results(200, 1):
        c.add(r)
    assert not any(g.windows for g in c.groups.by_kind.values())
    assert not {"by_name", "by_model", "by_turn"} & set(summarize(c))
    # one name on a worker ships just the name, no windows
    d = c.take_delta()
    assert d["groups"] == {"name": {"only": "POST /v1/chat/completions"},
                           "model": {"only": "m"}, "turn": {"only": "-"}}  # fmt: skip


def test_groups_are_capped_and_the_cap_is_logged_once(caplog):
    results = make_results(MAX_GROUPS + 40, 2)
    for i, r in enumerate(results):
        r.name = f"n{i}"
    c = Collector()
    with caplog.at_level(logging.WARNING, logger="locust_llm"):
        for r in results:
            c.add(r)
    groups = summarize(c)["by_name"]
    assert len(groups) == MAX_GROUPS + 1 and OTHER in groups
    assert groups[OTHER]["total_requests"] == 40
    assert sum(g["total_requests"] for g in groups.values()) == len(results)
    assert len([m for m in caplog.messages if "distinct request names" in m]) == 1


def test_group_samples_follow_the_exact_cap():
    results = _named(300, 7, ["x", "y"], switch_at=0)
    c = Collector(exact_cap=500)
    for r in results:
        c.add(r)
    assert "itl" in c.sketch_only
    for w in c.groups.grouped("name").values():
        assert w.sketches["itl"].samples is None  # sketch-only like the run's own windows
        assert w.sketches["ttft"].samples is not None


def test_reset_forgets_groups():
    c = Collector()
    for r in _named(100, 4, ["x", "y"]):
        c.add(r)
    c.reset()
    for r in make_results(10, 4):
        c.add(r)
    assert "by_name" not in summarize(c)
