"""SSEParser: split invariance (property tests), EOF handling, fuzzing for robustness."""

from __future__ import annotations

import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from locust_llm.sse import SSEError, SSEEvent, SSEParser

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- a generator of valid streams together with the events they must yield ------------------

# field values: any text without line ends (non-ASCII included, so splits cut UTF-8 sequences)
_value = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)),
    max_size=12,
).map(lambda s: s.encode("utf-8"))
_json_like = st.sampled_from(
    [
        b'{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"hi"}}]}',
        b'{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}',
        b"[DONE]",
        b"",
        b" leading space",
        b"a: b: c",
    ]
)


@st.composite
def field_line(draw, name: bytes, value: bytes) -> bytes:
    """``name: value`` or ``name:value`` (only when the value does not start with a space)."""
    if value[:1] == b" " or draw(st.booleans()):
        return name + b": " + value
    return name + b":" + value


@st.composite
def event_lines(draw) -> tuple[list[bytes], SSEEvent | None]:
    lines: list[bytes] = []
    n_data = draw(st.sampled_from([1, 1, 2, 3, 0]))
    data_values = [draw(st.one_of(_value, _json_like)) for _ in range(n_data)]
    ev_type = draw(st.one_of(st.none(), _value))
    ev_id = draw(st.one_of(st.none(), _value))
    # optional fields and comments anywhere among the data lines
    items: list[tuple[str, bytes]] = [("data", v) for v in data_values]
    if ev_type is not None:
        items.insert(draw(st.integers(0, len(items))), ("event", ev_type))
    if ev_id is not None:
        items.insert(draw(st.integers(0, len(items))), ("id", ev_id))
    for _ in range(draw(st.integers(0, 2))):
        items.insert(
            draw(st.integers(0, len(items))),
            ("comment", draw(st.sampled_from([b" keep-alive", b"", b"x:y"]))),
        )
    if draw(st.booleans()):
        items.insert(draw(st.integers(0, len(items))), ("retry", b"3000"))
    for kind, v in items:
        if kind == "comment":
            lines.append(b":" + v)
        else:
            lines.append(draw(field_line(kind.encode(), v)))
    expected = None
    if data_values:
        expected = SSEEvent(b"\n".join(data_values), ev_type or b"", ev_id or b"")
    return lines, expected


@st.composite
def sse_stream(draw, endings=(b"\n", b"\r\n", b"\r"), open_tail: bool | None = None):
    """(stream bytes, expected events, whether an event is still open at EOF)."""
    per_line = draw(st.booleans())  # one ending for the whole stream, or one per line
    stream_eol = draw(st.sampled_from(endings))
    lines: list[bytes] = []
    expected: list[SSEEvent] = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 4)) == 0:
            lines.append(b": keep-alive")
            lines.append(b"")  # a comment block followed by a blank line dispatches nothing
        ev_lines, ev = draw(event_lines())
        lines += ev_lines
        lines.append(b"")
        if ev is not None:
            expected.append(ev)
    tail_open = draw(st.booleans()) if open_tail is None else open_tail
    tail_terminated = True
    if tail_open:
        lines.append(draw(field_line(b"data", draw(_value))))
        tail_terminated = draw(st.booleans())
    out = bytearray()
    prev = b""
    for i, line in enumerate(lines):
        eol = draw(st.sampled_from(endings)) if per_line else stream_eol
        if prev == b"\r" and line == b"" and eol == b"\n":
            eol = b"\r"  # '\r' then an empty '\n'-line would read as one '\r\n' line end
        out += line
        if i < len(lines) - 1 or tail_terminated:
            out += eol
        prev = eol
    return bytes(out), expected, tail_open


def _feed_pieces(data: bytes, cuts: list[int], parser: SSEParser | None = None):
    p = parser or SSEParser()
    events: list[SSEEvent] = []
    prev = 0
    for c in sorted(set(cuts)) + [len(data)]:
        events += p.feed(data[prev:c])
        prev = c
    return events, p


@SETTINGS
@given(sse_stream(), st.data())
def test_any_split_yields_the_same_events(s, data):
    stream, expected, tail_open = s
    whole = SSEParser()
    got_whole = whole.feed(stream)
    assert got_whole == expected
    assert whole.close() is tail_open

    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    got, p = _feed_pieces(stream, cuts)
    assert got == expected
    assert p.close() is tail_open


@settings(max_examples=60, deadline=None)
@given(sse_stream())
def test_one_byte_at_a_time(s):
    stream, expected, tail_open = s
    p = SSEParser()
    got = []
    for i in range(len(stream)):
        got += p.feed(stream[i : i + 1])
    assert got == expected
    assert p.close() is tail_open


def _readlines(stream: bytes) -> list[bytes]:
    """What a transport's ``readline`` returns: pieces ending in b'\\n' (the last maybe not)."""
    parts = stream.split(b"\n")
    lines = [x + b"\n" for x in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


@SETTINGS
@given(sse_stream(endings=(b"\n", b"\r\n")))
def test_feed_line_over_readline_lines(s):
    stream, expected, tail_open = s
    p = SSEParser()
    got = [ev for line in _readlines(stream) if (ev := p.feed_line(line)) is not None]
    assert got == expected
    assert p.close() is tail_open


@SETTINGS
@given(sse_stream(endings=(b"\n", b"\r\n")))
def test_feed_line_without_terminators(s):
    """``readline`` variants that strip the terminator give the same events."""
    stream, expected, tail_open = s
    p = SSEParser()
    lines = [x.rstrip(b"\n").removesuffix(b"\r") for x in _readlines(stream)]
    got = [ev for line in lines if (ev := p.feed_line(line)) is not None]
    assert got == expected
    assert p.close() is tail_open


def test_bare_cr_line_through_feed_line():
    p = SSEParser()
    assert p.feed_line(b"data: a\rdata: b\r\r\n") == SSEEvent(b"a\nb")
    with pytest.raises(SSEError) as e:
        p.feed_line(b"data: a\r\rdata: b\r\r\n")
    # the user is told what the server did and what to change, not an internal method name
    msg = str(e.value)
    assert "feed()" not in msg and "bare CR" in msg and "LF or CRLF" in msg


# -- concrete cases ------------------------------------------------------------------------


def test_vllm_stream_and_spec_details():
    stream = (
        b": keep-alive\n\n"
        b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
        b"data:no-space\r\n\r\n"
        b"data:  two spaces\r\r"
        b"event: ping\nid: 7\ndata\n\n"  # 'data' without colon: an empty data line
        b"id: a\x00b\ndata: x\n\n"  # id with NUL is ignored
        b"event: only\n\n"  # no data: nothing dispatched
        b"data: [DONE]\n\n"
    )
    evs = SSEParser().feed(stream)
    assert [e.data for e in evs] == [
        b'{"choices":[{"delta":{"role":"assistant","content":""}}]}',
        b"no-space",
        b" two spaces",
        b"",
        b"x",
        b"[DONE]",
    ]
    assert (evs[3].event, evs[3].id) == (b"ping", b"7")
    assert evs[4].id == b""
    assert evs[5].event == b""  # the 'event: only' block was reset by its blank line


def test_crlf_split_between_feeds():
    p = SSEParser()
    assert p.feed(b"data: a\r") == []
    assert p.feed(b"\n") == []  # the '\n' completes '\r\n', it is not a second (blank) line
    assert p.feed(b"\r") == [SSEEvent(b"a")]
    assert p.feed(b"\n") == []  # again one line end, not an extra blank line
    assert p.feed(b"data: b\n\n") == [SSEEvent(b"b")]


def test_eof_open_event_is_dropped_and_reported():
    p = SSEParser()
    assert p.feed(b'data: {"choices":[]}\n') == []
    assert p.pending
    assert p.close() is True
    assert not p.pending
    # after close the parser is clean and reusable
    assert p.feed(b"data: x\n\n") == [SSEEvent(b"x")]
    assert p.close() is False
    # a truncated line (no line end at all) is pending too
    p.feed(b'data: {"cho')
    assert p.close() is True


def test_clean_eof_reports_nothing_pending():
    p = SSEParser()
    p.feed(b"data: x\n\n: keep-alive\n")
    assert not p.pending
    assert p.close() is False


# -- fuzzing -------------------------------------------------------------------------------

SMALL = 256


def _check_bounded(p: SSEParser, chunk_len: int) -> None:
    assert len(p._buf) <= p.max_event_bytes + chunk_len
    assert sum(len(d) + 1 for d in p._data) <= p.max_event_bytes + 1


def _fuzz_feed(p: SSEParser, pieces: list[bytes]) -> None:
    for piece in pieces:
        try:
            evs = p.feed(piece)
        except SSEError:
            pass
        else:
            for e in evs:
                assert isinstance(e, SSEEvent)
                assert len(e.data) <= p.max_event_bytes
        _check_bounded(p, len(piece))
    p.close()
    assert not p._buf and not p._data


_noise = st.lists(
    st.one_of(
        st.binary(max_size=300),
        st.sampled_from(
            [b"\r", b"\n", b"\r\n", b"data:", b"data: ", b":", b"\xff\xfe", b"\xc3", b"\x00"]
        ),
        st.binary(min_size=SMALL, max_size=3 * SMALL),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(_noise)
def test_fuzz_random_bytes_only_sseerror(pieces):
    _fuzz_feed(SSEParser(max_event_bytes=SMALL), pieces)


@settings(max_examples=150, deadline=None)
@given(_noise)
def test_fuzz_feed_line_only_sseerror(pieces):
    p = SSEParser(max_event_bytes=SMALL)
    for line in b"".join(pieces).split(b"\n"):
        try:
            p.feed_line(line + b"\n")
        except SSEError:
            pass
        _check_bounded(p, len(line) + 1)
    p.close()


@SETTINGS
@given(sse_stream(), st.data())
def test_fuzz_truncated_and_corrupted_streams(s, data):
    stream, _, _ = s
    cut = data.draw(st.integers(0, len(stream)))
    junk = data.draw(st.binary(max_size=20))
    pos = data.draw(st.integers(0, cut))
    corrupted = stream[:pos] + junk + stream[pos:cut]
    cuts = data.draw(st.lists(st.integers(0, len(corrupted)), max_size=10))
    prev, pieces = 0, []
    for c in sorted(set(cuts)) + [len(corrupted)]:
        pieces.append(corrupted[prev:c])
        prev = c
    _fuzz_feed(SSEParser(max_event_bytes=SMALL), pieces)


def test_invalid_utf8_passes_through_as_bytes():
    p = SSEParser()
    evs = p.feed(b"data: \xff\xfe\xc3\n\xc3\xa9: comment\ndata:\xe2\x82\n\n")
    assert evs == [SSEEvent(b"\xff\xfe\xc3\n\xe2\x82")]


@pytest.mark.parametrize("piece", [1, 4096, 65536, 1 << 20])
def test_giant_line_is_refused_quickly_and_memory_stays_bounded(piece):
    limit = 64 * 1024
    total = 3 * (1 << 20)  # 3 MiB line without a line end
    p = SSEParser(max_event_bytes=limit)
    raised = 0
    t0 = time.perf_counter()
    sent = 0
    big = b"x" * piece
    # one byte at a time only up to a little past the limit (Python call overhead), else all
    budget = 2 * limit if piece == 1 else total
    while sent < budget:
        try:
            p.feed(big)
        except SSEError:
            raised += 1
        assert len(p._buf) <= limit + piece
        sent += piece
    # the line ends: parsing resumes with the next line
    evs = p.feed(b"\ndata: after\n\n")
    assert time.perf_counter() - t0 < 5
    assert raised == 1  # one error for the line, then its rest is skipped
    assert evs == [SSEEvent(b"after")]


def test_giant_event_of_many_data_lines_is_refused():
    p = SSEParser(max_event_bytes=1000)
    with pytest.raises(SSEError):
        p.feed(b"data: " + b"y" * 100 + b"\n" * 1 + (b"data: " + b"y" * 100 + b"\n") * 20)
    assert not p._data and not p._buf
    assert p.feed(b"\ndata: ok\n\n") == [SSEEvent(b"ok")]


def test_giant_line_default_limit_memory():
    """A > 1 MiB line at the default limit: buffered once (no quadratic copies), then parsed."""
    p = SSEParser()
    line = b"data: " + b"z" * (3 << 19) + b"\n\n"
    tracemalloc.start()
    try:
        evs, _ = _feed_pieces(line, list(range(0, len(line), 8192)), p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert evs == [SSEEvent(b"z" * (3 << 19))]
    assert peak < 6 * len(line)


def _best_of(n: int, fn) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def test_linear_time_many_lines_in_one_chunk():
    """1 MiB of short lines in one feed() costs what it costs in 16 KiB feeds (no rescans)."""
    many = b'data: {"x": 1}\n\n' * 65536  # 1 MiB, 65536 events, no '\r' anywhere

    def whole():
        assert len(SSEParser().feed(many)) == 65536

    def pieces():
        p = SSEParser()
        n = sum(len(p.feed(many[i : i + 16384])) for i in range(0, len(many), 16384))
        assert n == 65536

    ratio = _best_of(3, whole) / _best_of(3, pieces)
    assert ratio < 3.0, ratio  # a quadratic rescan made this ~4 (linear: ~1; margin for noise)


def test_linear_time_long_line_fed_bytewise():
    """A 400 kB line fed one byte per call costs what 400 kB of short lines cost."""
    n = 400_000
    long_line = b"data: " + b"x" * (n - 6)
    short_lines = b"data: x\n" * (n // 8)

    def bytewise(data):
        def run():
            p = SSEParser()
            for i in range(len(data)):
                p.feed(data[i : i + 1])
            p.close()

        return run

    ratio = _best_of(1, bytewise(long_line)) / _best_of(1, bytewise(short_lines))
    assert ratio < 2.0, ratio  # rescanning the buffered line on every call made this ~4
