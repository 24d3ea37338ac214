"""Coverage-guided fuzzing of the SSE parser with atheris (``pip install atheris``).

    .venv/bin/python benchmarks/fuzz_sse.py -max_total_time=60 -rss_limit_mb=512

The input is split into pieces at positions taken from its first bytes and fed to
``SSEParser.feed`` (and, line by line, to ``feed_line``) with a small ``max_event_bytes``. Any
exception other than ``SSEError``, an event larger than the limit, or a buffer beyond the
limit plus one piece is a crash. The hypothesis tests in ``tests/core/test_sse.py`` cover
the same ground on every ``make test``; this harness is for longer, coverage-guided runs.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from locust_llm.sse import SSEError, SSEParser

LIMIT = 512


def _check(p: SSEParser, piece_len: int) -> None:
    if len(p._buf) > p.max_event_bytes + piece_len:
        raise AssertionError(f"buffer {len(p._buf)} > limit {p.max_event_bytes} + {piece_len}")
    if sum(len(d) + 1 for d in p._data) > p.max_event_bytes + 1:
        raise AssertionError("open event larger than the limit")


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    cuts = sorted({fdp.ConsumeIntInRange(0, 4096) for _ in range(fdp.ConsumeIntInRange(0, 16))})
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())

    p = SSEParser(max_event_bytes=LIMIT)
    prev = 0
    for c in [*cuts, len(stream)]:
        piece = stream[prev : max(c, prev)]
        prev = max(c, prev)
        try:
            for ev in p.feed(piece):
                if len(ev.data) > LIMIT:
                    raise AssertionError("event larger than max_event_bytes")
        except SSEError:
            pass
        _check(p, len(piece))
    p.close()

    q = SSEParser(max_event_bytes=LIMIT)
    for line in stream.split(b"\n"):
        try:
            q.feed_line(line + b"\n")
        except SSEError:
            pass
        _check(q, len(line) + 1)
    q.close()


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
