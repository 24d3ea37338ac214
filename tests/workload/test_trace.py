"""Trace parsing, prompts with shared block prefixes, and the open-loop replay schedule."""

from __future__ import annotations

import json

import pytest

from locust_llm.workload.tokens import count_tokens
from locust_llm.workload.trace import TraceError, detect_format, load_trace
from locust_llm.workload.trace_prompts import record_prompt, scaled_length
from locust_llm.workload.trace_schedule import TraceSchedule, lag_summary, replay_fields


def _jsonl(tmp_path, rows, name="t.jsonl"):
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(p)


MOONCAKE = [
    {"timestamp": 1000, "input_length": 1100, "output_length": 10, "hash_ids": [1, 2, 3]},
    {"timestamp": 1500, "input_length": 700, "output_length": 5, "hash_ids": [1, 4]},
    {"timestamp": 3000, "input_length": 1024, "output_length": 7, "hash_ids": [1, 2]},
]


def test_mooncake_records_rebased_and_detected(tmp_path):
    recs = load_trace(_jsonl(tmp_path, MOONCAKE))
    assert [r.time for r in recs] == [0.0, 0.5, 2.0]
    assert recs[0].hash_ids == (1, 2, 3) and recs[1].input_length == 700


def test_equal_block_ids_give_byte_identical_prefixes(tmp_path):
    a, b, c = (record_prompt(r, seed=3) for r in load_trace(_jsonl(tmp_path, MOONCAKE)))
    assert a.text[:2048] == b.text[:2048] == c.text[:2048]  # block 1 = 512 tokens
    assert a.text[:4095] == c.text  # blocks 1, 2 (c is exactly those, less the last space)
    assert a.text[2048:4096] != b.text[2048:4096]  # 2 vs 4
    for p, n in ((a, 1100), (b, 700), (c, 1024)):
        assert p.prompt_tokens == n == count_tokens(p.text)
    other = record_prompt(load_trace(_jsonl(tmp_path, MOONCAKE))[0], seed=4)
    assert other.text[:2048] != a.text[:2048]


def test_azure_csv(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
    )
    recs = load_trace(str(p))
    assert recs[0].time == 0.0 and recs[1].time == pytest.approx(4.314579, abs=1e-6)
    assert (recs[1].input_length, recs[1].output_length) == (396, 109)
    assert record_prompt(recs[1]).prompt_tokens == 396


def test_generic_jsonl(tmp_path):
    path = _jsonl(
        tmp_path,
        [
            {"timestamp": 0.5, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
            {"timestamp": 1.0, "prompt": "hello there"},
        ],
    )
    a, b = load_trace(path, "jsonl")
    assert b.time == 0.5 and record_prompt(a).messages[0]["content"] == "hi"
    assert record_prompt(a).max_tokens == 3 and record_prompt(b).text == "hello there"


@pytest.mark.parametrize(
    ("rows", "fmt", "needle"),
    [
        ([MOONCAKE[1], MOONCAKE[0]], None, ":2 field 'timestamp': timestamps must not decrease"),
        ([{"timestamp": 1, "input_length": -5, "output_length": 1}], None,
         ":1 field 'input_length': expected a whole number >= 0"),
        ([MOONCAKE[0], "{oops"], "mooncake", ":2: not valid JSON"),
        ([{"timestamp": 1, "input_length": 10, "output_length": 1, "hash_ids": [1, 2]}], None,
         "field 'hash_ids': 2 blocks of 512 tokens exceed input_length 10"),
        ([{"timestamp": 1}], "jsonl", ":1 field 'messages': missing"),
        ([MOONCAKE[0]], "sharegpt", "unknown trace format 'sharegpt'; expected one of"),
    ],
)  # fmt: skip
def test_bad_traces_name_file_line_field(tmp_path, rows, fmt, needle):
    path = _jsonl(tmp_path, rows)
    with pytest.raises(TraceError) as e:
        load_trace(path, fmt)
    assert str(e.value).startswith(path) and needle in str(e.value)


def test_azure_missing_column_and_bad_number(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("TIMESTAMP,ContextTokens\n1,2\n")
    with pytest.raises(TraceError, match="a.csv:1 field 'GeneratedTokens': missing column"):
        load_trace(str(p), "azure")
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n1,2,x\n")
    with pytest.raises(TraceError, match="a.csv:2 field 'GeneratedTokens': expected a whole"):
        load_trace(str(p), "azure")


def test_schedule_split_is_the_trace_and_loops_without_drift(tmp_path):
    recs = load_trace(_jsonl(tmp_path, MOONCAKE))  # times 0, 0.5, 2.0; period 3.0
    whole = [(d.at, d.record.line) for d in TraceSchedule(recs, speed=2.0, loop=True).until(1e4)]
    parts = [TraceSchedule(recs, speed=2.0, loop=True, index=i, count=3) for i in range(3)]
    union = sorted((d.at, d.record.line) for p in parts for d in p.until(1e4))
    assert union == whole and len(whole) == 20000  # 1e4 s / 1.5 s per loop, 3 per loop
    # loop k starts exactly at k * period / speed: no accumulated float drift
    assert whole[-2] == ((6666 * 3.0 + 0.0) / 2.0, 1)
    assert TraceSchedule(recs).requested_rate == pytest.approx(1.0)
    assert len(TraceSchedule(recs, loop=False).until(1e9)) == 3


def test_lag_summary_warns_when_late():
    ok = lag_summary([0.001] * 99 + [0.05])
    assert not ok.late and ok.warning() is None
    late = lag_summary([0.001] * 90 + [0.5] * 10, threshold=0.1)
    assert late.late and "p99 schedule lag 500.0 ms > 100 ms" in late.warning()
    assert lag_summary([]) is None


def test_smaller_blocks_scale_lengths_and_keep_the_sharing(tmp_path):
    a, b, c = (
        record_prompt(r, seed=3, block_tokens=16) for r in load_trace(_jsonl(tmp_path, MOONCAKE))
    )
    # 1100 * 16 / 512 = 34.375 -> 35: every listed block still fits
    assert [p.prompt_tokens for p in (a, b, c)] == [35, 22, 32]
    assert [count_tokens(p.text) for p in (a, b, c)] == [35, 22, 32]
    assert a.text[:64] == b.text[:64] == c.text[:64]  # block 1 = 16 tokens = 64 chars
    assert a.text[:127] == c.text  # blocks 1, 2
    assert a.text[64:128] != b.text[64:128]
    assert a.text[:64] == record_prompt(load_trace(_jsonl(tmp_path, MOONCAKE))[0], 3, 16).text[:64]
    assert scaled_length(1100) == 1100 and scaled_length(1, 16) == 1


def test_format_from_extension_then_content(tmp_path):
    csv = tmp_path / "x.csv"
    csv.write_text("a,b\n1,2\n")
    assert detect_format(str(csv)) == "azure"  # and then the missing columns say so:
    with pytest.raises(TraceError, match=r"x.csv:1 field 'TIMESTAMP': missing column"):
        load_trace(str(csv))
    assert detect_format(_jsonl(tmp_path, MOONCAKE)) == "mooncake"
    assert detect_format(_jsonl(tmp_path, [{"timestamp": 0, "prompt": "hi"}], "g.jsonl")) == "jsonl"
    with pytest.raises(TraceError, match=r"bad.jsonl:2: not valid JSON"):
        detect_format(_jsonl(tmp_path, ["", '{"timestamp": 0,'], "bad.jsonl"))


def test_replay_fields_read_the_summary_lags_and_dispatch_span():
    s = {
        "count_schedule_lag": 11,
        "p99_schedule_lag_ms": 80.0,
        "started_at": 100.0,
        "last_started_at": 105.0,
    }
    f = replay_fields(s, records=11, requested_rate=2.5, max_lag_ms=50.0)
    assert f["sent"] == 11 and f["achieved_rate"] == 2.0 and f["achieved_vs_requested"] == 0.8
    assert f["late"] and "p99 schedule lag 80.0 ms > 50 ms" in f["warning"]
    ok = replay_fields({**s, "p99_schedule_lag_ms": 3.0}, records=11, requested_rate=2.0,
                       max_lag_ms=50.0)  # fmt: skip
    assert not ok["late"] and ok["warning"] is None
    none = replay_fields({"count_schedule_lag": 0}, records=3, requested_rate=1.0, max_lag_ms=50)
    assert none["sent"] == 0 and none["achieved_rate"] is None and not none["late"]


def test_a_looped_record_repeats_its_blocks_not_its_tail(tmp_path):
    first = load_trace(_jsonl(tmp_path, MOONCAKE))[0]  # 1100 tokens inside its 3 blocks
    assert record_prompt(first, loop=0).text == record_prompt(first, loop=1).text
    # blocks 1, 2 (1024 tokens), then a 76-token tail no block id covers
    tail = load_trace(_jsonl(tmp_path, [{**MOONCAKE[2], "input_length": 1100}]))[0]
    a, b = record_prompt(tail, loop=0), record_prompt(tail, loop=1)
    assert a.text[:4096] == b.text[:4096] and a.text[4096:] != b.text[4096:]
    assert a.prompt_tokens == b.prompt_tokens == 1100
