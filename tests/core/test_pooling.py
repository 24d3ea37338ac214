"""Pooling requests (embeddings, rerank): bodies, answer checks, and the summary's section."""

from __future__ import annotations

import msgpack
import numpy as np
import orjson
import pytest

from locust_llm.backends.stack import serves_pooling
from locust_llm.console import format_summary
from locust_llm.metrics.collector import Collector
from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.summary import summarize
from locust_llm.pooling import (
    EMBEDDINGS_PATH,
    RERANK_PATH,
    PoolingInputError,
    embeddings_body,
    not_served,
    parse_embeddings,
    parse_rerank,
    rerank_body,
    route_missing,
)
from locust_llm.protocol import ProtocolError


def test_bodies_have_vllm_field_names():
    assert embeddings_body("m", ["a", "b"], dimensions=8) == {
        "model": "m",
        "input": ["a", "b"],
        "dimensions": 8,
    }
    assert embeddings_body("m", "one")["input"] == ["one"]
    assert rerank_body("m", "q", ["d1", "d2"], top_n=1) == {
        "model": "m",
        "query": "q",
        "documents": ["d1", "d2"],
        "top_n": 1,
    }
    assert "top_n" not in rerank_body("m", "q", ["d"])


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: embeddings_body("m", []), "embed(): inputs must be a non-empty list"),
        (lambda: embeddings_body("m", ["ok", ""]), "inputs[1] is ''"),
        (lambda: embeddings_body("m", None), "embed(): inputs must be a non-empty list"),
        (lambda: rerank_body("m", "", ["d"]), "rerank(): query must be a non-empty string"),
        (lambda: rerank_body("m", "q", []), "rerank(): documents must be a non-empty list"),
        (lambda: rerank_body("m", "q", ["d"], top_n=-1), "top_n must be an integer >= 0"),
    ],
)
def test_bad_input_is_one_clear_line(call, words):
    with pytest.raises(PoolingInputError) as e:
        call()
    assert words in str(e.value)
    assert "\n" not in str(e.value)


def _emb(n: int, usage: int | None = 7) -> bytes:
    doc = {
        "id": "embd-1",
        "object": "list",
        "created": 1,
        "model": "m",
        "data": [{"index": i, "object": "embedding", "embedding": [0.1, 0.2]} for i in range(n)],
    }
    if usage is not None:
        doc["usage"] = {"prompt_tokens": usage, "total_tokens": usage, "completion_tokens": 0}
    return orjson.dumps(doc)


def test_embeddings_answer_checked():
    a = parse_embeddings(_emb(3), 3)
    assert (a.prompt_tokens, a.items, a.id) == (7, 3, "embd-1")
    assert parse_embeddings(_emb(1, usage=None), 1).prompt_tokens is None
    with pytest.raises(ProtocolError, match="2 embeddings for 3 inputs"):
        parse_embeddings(_emb(2), 3)
    with pytest.raises(ProtocolError, match="not JSON"):
        parse_embeddings(b"<html>", 1)
    bad = orjson.loads(_emb(2))
    bad["data"][1]["index"] = 0
    with pytest.raises(ProtocolError, match="indices"):
        parse_embeddings(orjson.dumps(bad), 2)


def _rr(indices: list[int]) -> bytes:
    results = [
        {"index": i, "document": {"text": f"d{i}"}, "relevance_score": 1.0 / (k + 1)}
        for k, i in enumerate(indices)
    ]
    return orjson.dumps(
        {
            "id": "score-1",
            "model": "m",
            "usage": {"prompt_tokens": 9, "total_tokens": 9},
            "results": results,
        }
    )


def test_rerank_answer_checked():
    a = parse_rerank(_rr([2, 0, 1]), 3)
    assert (a.prompt_tokens, a.items) == (9, 3)
    # top_n trims the answer, not the work: every document was scored
    assert parse_rerank(_rr([2]), 3, top_n=1).items == 3
    with pytest.raises(ProtocolError, match="expected 3"):
        parse_rerank(_rr([2]), 3)
    with pytest.raises(ProtocolError, match="malformed"):
        parse_rerank(_rr([5, 0, 1]), 3)


def test_missing_route_is_told_from_unknown_model():
    assert route_missing(404, b'{"detail":"Not Found"}')
    assert route_missing(404, b"<html>404</html>")
    unknown = b'{"error":{"message":"The model `x` does not exist.","code":404}}'
    assert not route_missing(404, unknown)
    assert not route_missing(400, b'{"detail":"Not Found"}')
    msg = not_served(RERANK_PATH, "http://h:1/")
    assert msg.startswith("the server at http://h:1 does not serve /v1/rerank (HTTP 404)")
    assert "--runner pooling" in msg and "\n" not in msg
    assert "--convert embed" in not_served(EMBEDDINGS_PATH)


def _pool_result(t: float, e2e: float, tokens: int, items: int, error: str | None = None):
    r = LLMResult(name=EMBEDDINGS_PATH, model="m", t_start=t, items=items)
    r.stream_closed = e2e
    if error is None:
        r.e2e, r.prompt_tokens, r.status = e2e, tokens, 200
    else:
        r.error, r.error_kind, r.error_key, r.status = error, "http", "HTTP 500", 500
    return r


def test_pooling_section_is_numpy_over_requests_and_merges_across_processes():
    rng = np.random.default_rng(3)
    t0 = 1_700_000_000.0
    results = [
        _pool_result(t0 + i * 0.01, float(rng.lognormal(3, 0.4)), int(rng.integers(5, 50)), 4)
        for i in range(300)
    ]
    results.append(_pool_result(t0 + 1.0, 3.0, 0, 4, error="HTTP 500: boom"))
    local = Collector()
    for r in results:
        local.add(r)
    # two workers, each shipping its half; the master merges
    master = Collector()
    for part in (results[::2], results[1::2]):
        w = Collector()
        for r in part:
            w.add(r)
        wire = msgpack.packb(w.take_delta(), use_bin_type=True)  # Locust's transport
        master.merge_delta(msgpack.unpackb(wire, raw=False))
    ok = [r for r in results if r.error is None]
    lat = np.array([r.e2e for r in ok])
    for c in (local, master):
        s = summarize(c)
        p = s["pooling"]
        assert p["requests"] == len(ok) and p["failed"] == 1
        assert p["total_items"] == 4 * len(ok)
        assert p["total_input_tokens"] == sum(r.prompt_tokens for r in ok)
        assert p["mean_latency_ms"] == pytest.approx(lat.mean(), rel=1e-12)
        assert p["median_latency_ms"] == float(np.percentile(lat, 50))
        assert p["p99_latency_ms"] == float(np.percentile(lat, 99))
        assert p["items_per_s"] == pytest.approx(4 * len(ok) / s["duration"])
        assert p["input_tokens_per_s"] == pytest.approx(p["total_input_tokens"] / s["duration"])
        # requests like any other for run-level judgements; no generation latency invented
        assert s["completed"] == len(ok) and s["failed"] == 1
        assert s["total_input_tokens"] == p["total_input_tokens"]
        assert s["count_e2el"] == 0 and s["count_ttft"] == 0
        assert s["errors"] == {"HTTP 500": 1}
        text = "\n".join(format_summary(s))
        assert "Pooling requests:" in text and "Mean TTFT" not in text


def test_no_pooling_section_without_pooling_requests():
    c = Collector()
    r = LLMResult(name="chat", t_start=1_700_000_000.0, ttft=5.0, e2e=9.0, output_tokens=1)
    r.stream_closed = 9.0
    c.add(r)
    assert summarize(c)["pooling"] is None


@pytest.mark.parametrize(
    ("argv", "pooling"),
    [
        (["--runner", "pooling"], True),
        (["--convert=embed"], True),
        (["--max-num-seqs", "8", "--convert", "classify"], True),
        (["--runner", "generate"], False),
        (["--convert", "none"], False),
        ([], False),
    ],
)
def test_stack_knows_a_pooling_model_has_no_chat_route(argv, pooling):
    assert serves_pooling(argv) is pooling


def test_slos_on_the_pooling_section():
    from locust_llm.checks import SLOError, evaluate, parse_slo

    assert parse_slo("pooling_latency_p99<=0.1s").field == "pooling.p99_latency_ms"
    assert parse_slo("pooling_latency_p99<=0.1s").threshold == 100.0
    assert parse_slo("pooling_items_per_s>=500").field == "pooling.items_per_s"
    with pytest.raises(SLOError, match="use one of mean, median, std, min, max, p50"):
        parse_slo("pooling_latency_p99.9<=10ms")  # the section has no p99.9
    with pytest.raises(SLOError, match="plain number"):
        parse_slo("pooling_items_per_s>=5%")
    slos = [parse_slo(e) for e in ("pooling_latency_p99<=40ms", "pooling_items_per_s>=500")]
    s = {
        "completed": 3,
        "pooling": {"p99_latency_ms": 41.0, "items_per_s": 600.0, "count_latency": 3},
    }
    rows = evaluate(slos, s)
    assert [(r["value"], r["passed"]) for r in rows] == [(41.0, False), (600.0, True)]
    # a run without pooling requests, or none of them successful, has nothing to pass
    assert [r["passed"] for r in evaluate(slos, {"completed": 3, "pooling": None})] == [False] * 2
    s["pooling"] = {"p99_latency_ms": 0.0, "items_per_s": 0.0, "count_latency": 0}
    assert evaluate(slos[:1], s)[0]["value"] is None
