"""Open loop: requests at ``--llm-rate R`` per second, independent of response times.

    locust -f locustfiles/rate.py --headless -u 64 -r 64 -t 2m -H http://localhost:8000 \
        --llm-rate 8 --llm-arrival gamma --llm-burstiness 0.5 --llm-max-inflight 64

Why: closed-loop users slow down when the server does, hiding its queue (coordinated
omission). Here each process draws its slice of one arrival sequence at total rate R
(``locust_llm.workload.arrivals``, interleaved across ``--processes``/workers). Locust users
are *slots*: a free user takes the next scheduled arrival, sleeps until its time and sends
it. When every slot is busy, arrivals wait; the wait (actual send − scheduled time) is
recorded as ``queue_time`` (ms) and reported. ``--llm-max-inflight`` caps requests in
flight over the run (split evenly across processes); 0 = the number of users.
"""

from __future__ import annotations

import random
import sys
import time

import gevent
import gevent.lock
from locust import constant, events, task
from locust.user.users import LOCUST_STATE_STOPPING

from locust_llm.users import OpenAIChatUser
from locust_llm.workload import locust_options as wo
from locust_llm.workload.arrivals import ArrivalSchedule

wo.register()

_STATE: dict = {}


@events.init.add_listener
def _check(environment, **_kw):
    opts = environment.parsed_options
    if opts is not None and not (opts.llm_rate > 0):
        sys.stderr.write("rate.py: --llm-rate R (requests/s, > 0) is required\n")
        sys.exit(2)
    environment.llm_open_loop = True  # the summary's meta: arrivals at --llm-rate


@events.test_stop.add_listener
def _reset(**_kw):
    _STATE.clear()


def _loop(environment, users_here):
    """Per-process open-loop state, built on first use (after the split message)."""
    if not _STATE:
        state: dict = {}
        opts = environment.parsed_options
        index, count, start = wo.split_info()
        state["schedule"] = iter(
            ArrivalSchedule(
                opts.llm_rate,
                opts.llm_arrival,
                burstiness=opts.llm_burstiness,
                seed=opts.llm_seed,
                index=index,
                count=count,
            )
        )
        state["start"] = start if start is not None else time.time()
        cap = opts.llm_max_inflight
        state["slots"] = (
            gevent.lock.BoundedSemaphore(wo.inflight_share(environment, users_here))
            if cap
            else None
        )
        state["prompts"] = wo.prompt_source(environment)
        state["mix"] = wo.model_mix(environment)
        state["rng"] = random.Random(f"mix:{opts.llm_seed}:{index}")
        _STATE.update(state)  # all or nothing: a failed build is retried, never half-used
    return _STATE


class RateUser(OpenAIChatUser):
    wait_time = constant(0)

    @task
    def send(self) -> None:
        loop = _loop(self.environment, self.environment.runner.user_count)
        scheduled = loop["start"] + next(loop["schedule"])
        delay = scheduled - time.time()
        if delay > 0:
            gevent.sleep(delay)
        if self._state == LOCUST_STATE_STOPPING:
            # the run ended while this slot slept (graceful stop, --stop-timeout): an
            # arrival scheduled after the end is not part of the run
            return
        slots = loop["slots"]
        if slots is not None:
            slots.acquire()
        try:
            queue_ms = max(0.0, (time.time() - scheduled) * 1000.0)
            p = next(loop["prompts"])
            extra = {"model": loop["mix"].choose(loop["rng"])} if loop["mix"] else {}
            self.chat(
                p.chat_messages(),
                max_tokens=p.max_tokens,
                prompt_tokens=p.prompt_tokens,
                queue_time=queue_ms,
                **extra,
            )
        finally:
            if slots is not None:
                slots.release()
