"""The stream accumulator driven with bytes and chosen times: no sockets, exact figures."""

from __future__ import annotations

import orjson
import pytest

from locust_llm.metrics.record import LLMResult
from locust_llm.protocol import ProtocolError
from locust_llm.sse import SSEError
from locust_llm.stream import NO_TOKENS, TRUNCATED, StreamAccumulator
from locust_llm.timestamps import FULL, KERNEL

ROLE = {"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}


def tok(text, finish=None, usage=None):
    d = {"id": "c1", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}
    if usage is not None:
        d["usage"] = usage
    return d


def lines(*events):
    out = []
    for e in events:
        data = e if isinstance(e, bytes) else orjson.dumps(e)
        out += [b"data: " + data + b"\n", b"\n"]
    return out


def run(events, times, stamps=None, **finish):
    res = LLMResult(name="x", model="m")
    acc = StreamAccumulator(res, 10.0, stamps)
    it = iter(times)
    for line in lines(*events):
        if stamps is not None and line != b"\n":
            stamps.read()
        acc.feed(line, next(it) if line != b"\n" else 0.0)  # an event's time is its data line's
    acc.finish(11.0, **finish)
    return res


def test_vllm_definitions_from_chosen_times():
    res = run(
        [ROLE, tok("a"), tok("b"), tok("c", "length"), b"[DONE]"],
        [10.05, 10.1, 10.12, 10.15, 10.15],
    )
    assert res.error is None and res.text == "abc" and res.finish_reason == "length"
    assert res.ttft == pytest.approx(50.0)  # the role chunk counts, as in vLLM
    assert res.ttft_content == pytest.approx(100.0)
    assert res.itl == pytest.approx([50.0, 20.0, 30.0])
    assert res.e2e == pytest.approx(150.0) and res.stream_closed == pytest.approx(1000.0)
    assert res.token_chunks == 4 and res.content_chunks == 3 and res.output_tokens == 3


def test_usage_wins_and_continuous_usage_gives_tokens_per_chunk():
    events = [
        tok("ab", usage={"completion_tokens": 2}),
        tok("c", "stop", usage={"completion_tokens": 5, "prompt_tokens": 7}),
    ]
    res = run(events + [b"[DONE]"], [10.1, 10.2, 10.2])
    assert res.output_tokens == 5 and res.prompt_tokens == 7 and res.output_tokens_source == "usage"
    assert res.chunk_tokens == [2, 3]


def test_truncated_and_empty_streams_are_failures():
    assert run([ROLE, tok("a")], [10.1, 10.2]).error == TRUNCATED
    assert run([b"[DONE]"], [10.1]).error == NO_TOKENS


def test_error_event_before_any_token_fails_after_tokens_is_midstream():
    err = {"error": {"message": "boom", "code": 500}}
    assert "boom" in run([err, b"[DONE]"], [10.1, 10.1]).error
    res = run([tok("a"), err, b"[DONE]"], [10.1, 10.2, 10.2])
    assert res.error is None and "boom" in res.midstream_error


def test_bad_json_and_oversize_lines_raise():
    res = LLMResult(name="x", model="m")
    acc = StreamAccumulator(res, 0.0)
    acc.feed(b"data: {not json\n", 1.0)
    with pytest.raises(ProtocolError):
        acc.feed(b"\n", 1.0)
    with pytest.raises(SSEError):
        StreamAccumulator(res, 0.0).feed(b"data: a\r\rdata: b\r\r\n", 1.0)


def test_event_time_is_its_first_data_line():
    res = LLMResult(name="x", model="m")
    acc = StreamAccumulator(res, 0.0)
    acc.feed(b'data: {"id":"c1","choices":[{"index":0,\n', 0.1)
    acc.feed(b'data: "delta":{"content":"a"},"finish_reason":"stop"}]}\n', 0.5)
    acc.feed(b"\n", 0.6)
    acc.finish(1.0)
    assert res.ttft == pytest.approx(100.0)


class Stamps:
    """What the accumulator reads from a timestamping socket, scripted per read."""

    def __init__(self, reads):
        self.reads = iter(reads)
        self.ts_last, self.ts_seq, self.ts_kind, self.ts_sent = 0.0, 0, KERNEL, 10.001

    def read(self):
        t, seq, kind = next(self.reads)
        self.ts_last, self.ts_seq, self.ts_kind = t, seq, kind


def test_kernel_stamps_replace_user_times_and_shared_gaps_are_left_out():
    # tokens b and c came in one read (seq 3): the gaps touching b are left out of ITL
    stamps = Stamps(
        [
            (10.04, 1, KERNEL),
            (10.06, 2, KERNEL),
            (10.09, 3, KERNEL),
            (10.09, 3, KERNEL),
            (10.12, 4, FULL),
        ]
    )
    res = run(
        [ROLE, tok("a"), tok("b"), tok("c"), tok("d", "stop")],
        [10.05, 10.07, 10.1, 10.1, 10.13],
        stamps,
    )
    assert res.timestamps == "kernel" and res.error is None
    assert res.ttft == pytest.approx(40.0) and res.e2e == pytest.approx(120.0)
    assert res.ttft_content == pytest.approx(60.0)
    assert res.itl == pytest.approx([20.0, 30.0, 0.0, 30.0])
    assert res.shared == [2, 4] and res.shared_reads == 2 and res.own_stamps == 3
    assert res.itl_exact == pytest.approx([20.0])  # (role,a); the rest touch b or d
    assert res.read_lateness == pytest.approx([10.0, 10.0, 10.0, 10.0])  # one per read
    assert res.send_lateness == pytest.approx(1.0)


def test_cut_off_keeps_a_consistent_partial_record():
    res = LLMResult(name="x", model="m")
    acc = StreamAccumulator(res, 10.0)
    for line, t in zip(lines(ROLE, tok("a"), tok("b")), [10.1, 0, 10.2, 0, 10.3, 0]):
        acc.feed(line, t)
    acc.cut_off()
    assert res.ttft == pytest.approx(100.0) and res.token_chunks == 3 and len(res.itl) == 2
    assert res.text == "ab" and res.e2e is None and res.error is None
