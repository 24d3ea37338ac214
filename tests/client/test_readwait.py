"""The body reader's wait: one deadline per response, counted from the last byte read."""

from __future__ import annotations

import time

import gevent
import gevent.socket
import pytest

from locust_llm.readwait import ReadWait, nonblocking_recv
from locust_llm.timestamps.socket import TimestampingSocket


def _pair(cls=gevent.socket.socket, timeout=0.4):
    srv = gevent.socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    cli = cls(gevent.socket.AF_INET, gevent.socket.SOCK_STREAM)
    cli.connect(srv.getsockname())
    peer, _ = srv.accept()
    srv.close()
    cli.settimeout(timeout)
    return cli, peer


def _read_until_silent(cli):
    """Read as the body reader does; return (bytes, seconds until the timeout)."""
    recv = nonblocking_recv(cli)
    waiter = ReadWait(cli)
    got = b""
    since = time.perf_counter()
    t0 = since
    try:
        while True:
            waiter.wait(since)
            data = recv(4096)
            if data is None:
                continue
            got += data
            since = time.perf_counter()
    except TimeoutError:
        return got, time.perf_counter() - since, time.perf_counter() - t0
    finally:
        waiter.close()


@pytest.mark.timing
@pytest.mark.parametrize("cls", [gevent.socket.socket, TimestampingSocket])
def test_bytes_closer_than_the_timeout_never_time_out_and_silence_does(cls):
    cli, peer = _pair(cls, timeout=0.4)

    def trickle():
        for i in range(8):  # 8 × 0.15 s = 1.2 s in all: three times the timeout
            peer.sendall(b"%d" % i)
            gevent.sleep(0.15)

    g = gevent.spawn(trickle)
    got, silent, total = _read_until_silent(cli)
    g.join()
    assert got == b"01234567"  # nothing lost, no timeout while bytes kept coming
    assert total > 1.0
    assert 0.35 <= silent <= 0.8  # the timeout is silence since the last byte
    cli.close()
    peer.close()


def test_a_killed_reader_leaves_no_timer_behind():
    cli, peer = _pair(timeout=0.2)
    waiter = ReadWait(cli)
    g = gevent.spawn(waiter.wait, time.perf_counter())
    gevent.sleep(0.05)
    timer = waiter._timer
    assert timer is not None and timer.active  # the deadline runs while it waits
    g.kill()
    assert g.dead and cli._read_event.callback is None  # the socket can be waited on again
    waiter.close()
    assert not timer.active and waiter._timer is None
    cli.close()
    peer.close()


def test_a_second_reader_is_refused_as_gevent_refuses_it():
    cli, peer = _pair(timeout=1.0)
    a, b = ReadWait(cli), ReadWait(cli)
    g = gevent.spawn(a.wait, time.perf_counter())
    gevent.sleep(0.01)
    with pytest.raises(gevent.exceptions.ConcurrentObjectUseError):
        b.wait(time.perf_counter())
    peer.sendall(b"x")
    g.join(1)
    a.close()
    b.close()
    cli.close()
    peer.close()


def test_tls_and_other_sockets_are_read_with_their_own_recv():
    class Other(gevent.socket.socket):
        pass

    cli, peer = _pair(Other)
    assert nonblocking_recv(cli) is None
    cli.settimeout(0.0)  # a non-blocking user socket: EWOULDBLOCK must still raise
    assert nonblocking_recv(cli) is None
    cli.close()
    peer.close()
    cli, peer = _pair()
    recv = nonblocking_recv(cli)
    assert recv(10) is None  # nothing there yet: None, no exception
    peer.sendall(b"abc")
    gevent.sleep(0.05)
    assert recv(10) == b"abc"
    peer.close()
    gevent.sleep(0.05)
    assert recv(10) == b""  # EOF
    cli.close()
