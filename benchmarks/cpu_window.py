"""The window every client benchmark locustfile measures: process CPU and wall time between
Locust's test start and test stop, so start-up and shutdown stay out of CPU per token.

``record(key, counter)`` zeroes ``counter[0]`` at test start and, at test stop, writes
``{key: counter[0], "cpu_s", "wall_s"}`` to ``$BENCH_OUT`` (``bench_client.py`` reads it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from locust import events


def record(key: str, counter: list[int], on_start: Callable[[], None] | None = None) -> None:
    """Measure the test window for this locustfile; ``on_start`` runs once it has begun."""
    t: dict[str, float] = {}

    @events.test_start.add_listener
    def _start(**_kw: object) -> None:
        t["cpu"], t["wall"] = time.process_time(), time.perf_counter()
        counter[0] = 0
        if on_start is not None:
            on_start()

    @events.test_stop.add_listener
    def _stop(**_kw: object) -> None:
        out = os.environ.get("BENCH_OUT")
        if out and "cpu" in t:
            with open(out, "w") as f:
                json.dump(
                    {
                        key: counter[0],
                        "cpu_s": time.process_time() - t["cpu"],
                        "wall_s": time.perf_counter() - t["wall"],
                    },
                    f,
                )
