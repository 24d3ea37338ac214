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


@pytest.mark.parametrize("same_read", [True, False])
def test_a_last_token_read_with_the_streams_end_has_no_stamp_of_its_own(same_read):
    # a read's stamp is its last segment's arrival: when [DONE] (written after the last
    # token) came in the same read, the last token's time is the end's, not its own
    end = (10.095, 3, KERNEL) if same_read else (10.095, 4, KERNEL)
    stamps = Stamps([(10.04, 1, KERNEL), (10.06, 2, KERNEL), (10.09, 3, KERNEL), end])
    res = run([ROLE, tok("a"), tok("b", "stop"), b"[DONE]"], [10.05, 10.07, 10.1, 10.1], stamps)
    assert res.error is None and res.itl == pytest.approx([20.0, 30.0])
    if same_read:
        assert res.shared == [2] and res.own_stamps == 2
        assert res.itl_exact == pytest.approx([20.0])  # the gap to the last token is out
    else:
        assert res.shared == [] and res.own_stamps == 3
        assert res.itl_exact == pytest.approx([20.0, 30.0])


def test_cut_off_keeps_a_consistent_partial_record():
    res = LLMResult(name="x", model="m")
    acc = StreamAccumulator(res, 10.0)
    for line, t in zip(lines(ROLE, tok("a"), tok("b")), [10.1, 0, 10.2, 0, 10.3, 0]):
        acc.feed(line, t)
    acc.cut_off()
    assert res.ttft == pytest.approx(100.0) and res.token_chunks == 3 and len(res.itl) == 2
    assert res.text == "ab" and res.e2e is None and res.error is None


# -- feed_block: whole socket reads, any split, same result as line by line ----------------


def _framed(draw, st):
    """A token stream as servers may frame it: LF or CRLF, comments and keep-alives, event/id
    fields, JSON spread over several data lines, blank-line runs; the events it holds."""
    eol = draw(st.sampled_from([b"\n", b"\n", b"\r\n"]))
    out = bytearray()
    texts = []
    for i in range(draw(st.integers(1, 8))):
        text = draw(st.sampled_from(["a", "bc", "é", " ", "\\n", ""]))
        texts.append(text)
        payload = orjson.dumps(tok(text, "stop" if i == 7 else None))
        shape = draw(st.integers(0, 5))
        if shape == 1:
            out += b": keep-alive" + eol + eol
        if shape == 2:
            out += b"event: message" + eol + b"id: 7" + eol
        if shape == 3:  # one event over two data lines (JSON allows the joining newline)
            cut = payload.index(b",")
            out += b"data: " + payload[: cut + 1] + eol + b"data:" + payload[cut + 1 :] + eol
        else:
            out += b"data: " + payload + eol
        if shape == 4:
            out += b":x" + eol
        out += eol
        if shape == 5:
            out += eol
    out += b"data: [DONE]" + eol + eol
    return bytes(out), texts


def _by_lines(data: bytes, cuts: list[int], times: list[float]) -> LLMResult:
    """The reference: each line fed alone, at the time of the read that completed it."""
    res = LLMResult(name="x", model="m")
    acc = StreamAccumulator(res, 0.0)
    bounds = [*cuts, len(data)]
    start = 0
    while (end := data.find(b"\n", start)) >= 0:
        read = next(k for k, b in enumerate(bounds) if b > end)
        acc.feed(data[start : end + 1], times[read])
        start = end + 1
    acc.finish(100.0)
    return res


def _by_blocks(data: bytes, cuts: list[int], times: list[float]) -> LLMResult:
    res = LLMResult(name="x", model="m")
    acc = StreamAccumulator(res, 0.0)
    prev = 0
    for c, t in zip([*cuts, len(data)], times, strict=True):
        if c > prev:
            acc.feed_block(data[prev:c], t)
        prev = c
    acc.finish(100.0)
    return res


def test_blocks_any_split_match_lines():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=200, deadline=None)
    @given(st.data())
    def check(d):
        data, texts = _framed(d.draw, st)
        cuts = sorted(set(d.draw(st.lists(st.integers(1, len(data) - 1), max_size=12))))
        times = [float(i + 1) for i in range(len(cuts) + 1)]
        a, b = _by_lines(data, cuts, times), _by_blocks(data, cuts, times)
        assert b.error is None and b.text == "".join(texts)
        for f in ("text", "itl", "ttft", "ttft_content", "e2e", "token_chunks", "finish_reason"):
            assert getattr(a, f) == getattr(b, f), f

    check()


def test_block_times_are_the_reads_and_split_events_keep_their_first_line():
    res = LLMResult(name="x", model="m")
    acc = StreamAccumulator(res, 0.0)
    role, a, b = (b"data: " + orjson.dumps(e) + b"\n\n" for e in (ROLE, tok("a"), tok("b")))
    acc.feed_block(role + a[:9], 0.1)  # a's first line is cut: a arrives with the next read
    acc.feed_block(a[9:] + b[:-1], 0.3)  # b's data line complete, its blank line not yet
    acc.feed_block(b"\n" + b"data: [DONE]\n\n", 0.5)
    acc.finish(1.0)
    assert res.error is None and res.text == "ab"
    assert res.ttft == pytest.approx(100.0) and res.itl == pytest.approx([200.0, 0.0])


def test_blocks_keep_the_errors_of_lines():
    with pytest.raises(SSEError, match="bare CR"):
        StreamAccumulator(LLMResult(name="x", model="m"), 0.0).feed_block(
            b"data: a\r\rdata: b\r\r\n", 1.0
        )
    acc = StreamAccumulator(LLMResult(name="x", model="m"), 0.0)
    with pytest.raises(ProtocolError):
        acc.feed_block(b"data: {not json\n\n", 1.0)
    acc = StreamAccumulator(LLMResult(name="x", model="m"), 0.0)
    acc._max = 64  # a line that never ends is refused, not buffered without bound
    with pytest.raises(SSEError, match="without a line end"):
        acc.feed_block(b"data: " + b"x" * 100, 1.0)


@pytest.mark.parametrize(
    ("shared", "late", "own"),
    [([4], 0.0, 1.0), ([3, 4], 0.4, 0.6), ([0, 4], 0.0, 1.0), ([2], 0.2, 0.8)],
)
def test_a_last_token_shared_only_with_the_end_is_not_a_late_read(shared, late, own):
    # the end written right after the last token shares its read as the role chunk does
    # the first token's: the health verdict counts neither as the client falling behind
    from locust_llm.metrics.collector import Collector
    from locust_llm.metrics.health import client_health

    c = Collector()
    res = LLMResult(name="x", model="m", t_start=1_700_000_000.0, ttft=10.0, e2e=50.0,
                    itl=[10.0] * 4, token_chunks=5, output_tokens=5, status=200)  # fmt: skip
    res.timestamps, res.shared, res.shared_reads = "kernel", shared, len(shared)
    res.own_stamps = 5 - len(shared)
    c.add(res)
    h = client_health(c.merged(), {"p99_read_lateness_ms": 0.1, "median_itl_ms": 10.0})
    assert h["client_late_shared_share"] == pytest.approx(late)
    assert h["client_own_stamp"] == pytest.approx(own)
