"""The web scraper runs in the load process: a large access-log chunk must not stall the hub."""

from __future__ import annotations

import time

import gevent
import pytest

from locust_llm.web.scrape import ServerScraper


@pytest.mark.timing  # measures wall-clock timing: run alone, not beside other tests
def test_8mib_access_log_is_parsed_without_stalling_other_greenlets(tmp_path):
    p = tmp_path / "access.log"
    line = b'{"time":1.0,"upstream":"127.0.0.1:8001","status":200}\n'
    n = (8 << 20) // len(line)
    p.write_bytes(line * n)
    s = ServerScraper(lambda: [], access_log=lambda: p)
    gaps: list[float] = []
    done = False

    def tick() -> None:  # stands in for the users' greenlets
        last = time.perf_counter()
        while not done:
            gevent.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    g = gevent.spawn(tick)
    gevent.sleep(0.02)
    s.poll_once()
    done = True
    g.join()
    assert s.upstream_requests == {"127.0.0.1:8001": n}
    # parsed in the greenlet it held the hub for the whole parse (80+ ms here); off the hub
    # the other greenlets keep running (threads switch every 5 ms)
    assert max(gaps) < 0.05, max(gaps)
