"""The records writer: whole lines with one O_APPEND write, shared safely by processes."""

from __future__ import annotations

import json
import subprocess
import sys

SHORT_WRITER = r"""
import resource, signal, sys
from locust_llm.records import RecordsWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit is short, not fatal
path, limit = sys.argv[1], int(sys.argv[2])
w = RecordsWriter(path)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    w.write(b'{"who": "a", "pad": "' + b"x" * 200 + b'"}\n')
except OSError as e:
    print("ERR", e)
"""


def test_lines_of_two_writers_interleave_whole(tmp_path):
    from locust_llm.records import RecordsWriter

    path = str(tmp_path / "r.jsonl")
    a, b = RecordsWriter(path), RecordsWriter(path)
    for i in range(50):
        (a if i % 2 else b).write(json.dumps({"i": i}).encode() + b"\n")
    a.close(), b.close()
    assert [json.loads(x)["i"] for x in open(path, "rb")] == list(range(50))


def test_a_short_write_leaves_every_other_line_whole(tmp_path):
    from locust_llm.records import RecordsWriter

    path = tmp_path / "r.jsonl"
    other = RecordsWriter(str(path))  # another process's lines, before and after
    other.write(b'{"who": "b", "n": 1}\n')
    size = path.stat().st_size
    p = subprocess.run(
        [sys.executable, "-c", SHORT_WRITER, str(path), str(size + 10)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert "ERR" in p.stdout and "short write" in p.stdout, p.stdout + p.stderr
    other.write(b'{"who": "b", "n": 2}\n')
    other.close()
    lines = path.read_bytes().splitlines()
    assert [json.loads(x) for x in lines] == [{"who": "b", "n": 1}, {"who": "b", "n": 2}]
