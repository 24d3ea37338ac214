"""Locustfile for benchmarks/bench_client.py: the full metrics path, plus process-CPU accounting.

Writes ``{"tokens", "cpu_s", "wall_s"}`` of the Locust process between test start and test stop
to ``$BENCH_OUT`` so CPU per token excludes start-up and shutdown. ``tokens`` counts the token
chunks of every request, those cut off at test stop too, as the reference loops count theirs.
"""

import os
import time

from cpu_window import record
from locust import constant, events, task

from locust_llm import OpenAIChatUser


class BenchChatUser(OpenAIChatUser):
    wait_time = constant(0)

    @task
    def chat_once(self):
        self.chat(self.llm.default_prompt())


_n = [0]


@events.llm_request.add_listener
def _count(result, **_kw):
    _n[0] += result.token_chunks


def _burn() -> None:
    """BENCH_BURN=1: a greenlet that hogs the CPU 5 ms out of every 10 ms (a busy client)."""
    import gevent

    while True:
        end = time.perf_counter() + 0.005
        while time.perf_counter() < end:
            pass
        gevent.sleep(0.005)


def _begin() -> None:
    if os.environ.get("BENCH_BURN") == "1":
        import gevent

        gevent.spawn(_burn)


record("tokens", _n, _begin)
