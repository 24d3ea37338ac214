"""geventhttpclient / Locust FastHttpSession level: the installer and stamps on real responses."""

import json
import sys

import pytest
from locust.contrib.fasthttp import FastHttpSession
from locust.event import EventHook

from benchmarks.stamps import TokenTimes
from locust_llm import timestamps as ts
from locust_llm.timestamps import install as ts_install
from tests.timestamps.helpers import BUSY, burn, wait_data


def session(base_url):
    events = []
    hook = EventHook()
    hook.add_listener(lambda **kw: events.append(kw))
    return FastHttpSession(base_url, request_event=hook, user=None), events


def stream(sess, gaps, busy=0.0):
    """The stream loop as users.py runs it, with a deliberately busy reader."""
    body = json.dumps({"gaps_ms": gaps})
    with sess.post("/v1/x", data=body, stream=True, catch_response=True) as r:
        reader = ts.StampReader.from_response(r)  # before reading: _sock goes at message end
        rec = TokenTimes(reader)
        stream = r.stream
        while True:
            if busy and stream._sock is not None and b"\n" not in stream._body_buffer:
                wait_data(reader.sock)
                burn(busy)
            line = stream.readline(b"\n")
            if not line:
                break
            if line.startswith(b"data: "):
                rec.mark()
        r.success()
    return reader, rec


@pytest.mark.timing  # measures wall-clock timing: run alone, not beside other tests
@pytest.mark.skipif(not ts.kernel_timestamps_supported(), reason="SO_TIMESTAMPNS unsupported")
def test_fasthttpsession_stream_gets_kernel_stamps(paced_server):
    sess, events = session(f"http://127.0.0.1:{paced_server.port}")
    assert ts.enable_kernel_timestamps(sess) is True
    assert ts.enable_kernel_timestamps(sess) is True  # idempotent
    gaps = [30] + [35] * 7
    reader, rec = stream(sess, gaps, busy=BUSY)
    sent = paced_server.sent()
    assert isinstance(reader.sock, ts.TimestampingSocket)
    a = rec.analyze()
    assert a.mode == "kernel" and a.tokens == len(gaps)
    assert a.fallbacks == 0 and a.own + a.shared == len(gaps)
    # Stamps lie inside the server's send call. The machine is shared with other busy runs
    # (a descheduled server bunches lines, a loopback drop delays one), so: the majority.
    outside = [max(b - t, t - e, 0.0) for t, (b, e) in zip(a.times, sent)]
    assert sum(o <= 0.0005 for o in outside) >= 0.75 * len(gaps), outside
    lat = sorted(a.read_lateness)
    assert lat[len(lat) // 2] >= BUSY - 0.001  # the user-space stamp: >= 20 ms late
    tight = [
        (gap, s1[1] - s0[1])
        for gap, s0, s1, o0, o1 in zip(a.itl, sent, sent[1:], outside, outside[1:])
        if s0[1] - s0[0] < 0.0002 and s1[1] - s1[0] < 0.0002 and o0 <= 0.0005 and o1 <= 0.0005
    ]
    if a.shared == 0 and tight:
        err = max(abs(x - y) for x, y in tight)
        print(
            f"\nITL error vs send times ({len(tight)} gaps): max {err * 1e3:.3f} ms",
            file=sys.stderr,
        )
        assert err < 0.0005
    # connection reused: the second request runs on the same timestamping socket
    reader2, rec2 = stream(sess, [5, 5, 5])
    paced_server.sent()
    assert reader2.sock is reader.sock and rec2.analyze().own == 3
    assert len(events) == 2 and all(e["exception"] is None for e in events)


def test_https_reports_unsupported_and_user_mode_works(tls_server):
    sess, events = session(f"https://localhost:{tls_server.port}")
    assert ts.enable_kernel_timestamps(sess) is False
    reader, rec = stream(sess, [10, 10, 10])
    tls_server.sent()
    assert reader is None
    a = rec.analyze()
    assert a.mode == "user" and a.tokens == 3 and len(a.itl) == 2
    assert events[0]["exception"] is None


def test_forced_user_mode_on_plain_http(paced_server):
    sess, _ = session(f"http://127.0.0.1:{paced_server.port}")  # installer not applied
    reader, rec = stream(sess, [5, 5])
    paced_server.sent()
    assert reader is None and rec.analyze().mode == "user"


def test_unsupported_platform_or_option(monkeypatch, paced_server):
    sess, _ = session(f"http://127.0.0.1:{paced_server.port}")
    monkeypatch.setattr(ts_install, "_SUPPORTED", None)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert ts.enable_kernel_timestamps(sess) is False
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ts_install, "_SUPPORTED", None)
    monkeypatch.setattr(ts_install, "SO_TIMESTAMPNS", 0x7FFF)  # an option the kernel refuses
    assert ts.enable_kernel_timestamps(sess) is False
    monkeypatch.setattr(ts_install, "_SUPPORTED", None)


@pytest.mark.skipif(not ts.kernel_timestamps_supported(), reason="SO_TIMESTAMPNS unsupported")
def test_installer_targets(paced_server):
    from geventhttpclient import HTTPClient
    from geventhttpclient.client import HTTPClientPool

    c = HTTPClient("127.0.0.1", paced_server.port)
    assert ts.enable_kernel_timestamps(c)
    r = c.post("/", body=json.dumps({"gaps_ms": [5, 5]}))
    reader = ts.StampReader.from_response(r)
    assert reader is not None
    while r.readline(b"\n"):
        pass
    paced_server.sent()
    assert reader.sock.ts_kind == ts.KERNEL and reader.sock.ts_seq >= 1
    assert ts.StampReader.from_response(r) is None  # _sock cleared at message end
    c.close()
    pool = HTTPClientPool()
    assert ts.enable_kernel_timestamps(pool, base_url=f"http://127.0.0.1:{paced_server.port}")
    assert ts.enable_kernel_timestamps(HTTPClient("localhost", 443, ssl=True)) is False
    with pytest.raises(TypeError):
        ts.enable_kernel_timestamps(object())
