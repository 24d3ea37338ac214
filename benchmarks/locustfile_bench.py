"""Locustfile for benchmarks/bench_client.py: the full metrics path, plus process-CPU accounting.

Writes ``{"cpu_s", "wall_s"}`` of the Locust process between test start and test stop to
``$BENCH_OUT`` so CPU per token excludes start-up and shutdown.
"""

import json
import os
import time

from locust import constant, events, task

from locust_llm import OpenAIChatUser


class BenchChatUser(OpenAIChatUser):
    wait_time = constant(0)

    @task
    def chat_once(self):
        self.chat(self.llm.default_prompt())


_t: dict[str, float] = {}


def _burn() -> None:
    """BENCH_BURN=1: a greenlet that hogs the CPU 5 ms out of every 10 ms (a busy client)."""
    import gevent

    while True:
        end = time.perf_counter() + 0.005
        while time.perf_counter() < end:
            pass
        gevent.sleep(0.005)


@events.test_start.add_listener
def _start(**_kw):
    _t["cpu"], _t["wall"] = time.process_time(), time.perf_counter()
    if os.environ.get("BENCH_BURN") == "1":
        import gevent

        gevent.spawn(_burn)


@events.test_stop.add_listener
def _stop(**_kw):
    out = os.environ.get("BENCH_OUT")
    if out and "cpu" in _t:
        with open(out, "w") as f:
            json.dump(
                {
                    "cpu_s": time.process_time() - _t["cpu"],
                    "wall_s": time.perf_counter() - _t["wall"],
                },
                f,
            )
