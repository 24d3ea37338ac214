"""Stepped concurrency sweep: ``--llm-sweep-users 1,2,4,8`` each held ``--llm-sweep-hold``
seconds after ``--llm-sweep-warmup`` seconds of warm-up, then stop.

    locust -f locustfiles/sweep.py --headless -H http://localhost:8000 \
        --llm-sweep-users 1,4,16,64 --llm-sweep-hold 60 --llm-sweep-warmup 10

Why: TTFT and throughput against concurrency up to saturation need every level
held long enough to measure. Requests started in a step's warm-up are excluded from the
metrics (marked warm-up, like ``--llm-warmup``). The step windows (epoch seconds) are kept
on ``environment.llm_phases`` and logged at the end, so the per-second ``intervals`` of the
summary can be split per step. In distributed runs, workers time steps from their own
test start (skew: the spawn delay).
"""

from __future__ import annotations

import logging
import time

from locust import LoadTestShape, constant, events, task

from locust_llm import plugin
from locust_llm.users import OpenAIChatUser
from locust_llm.workload import locust_options as wo
from locust_llm.workload.shapes import StepSweep

wo.register()
log = logging.getLogger("locust_llm.sweep")


def _sweep(environment) -> StepSweep:
    opts = environment.parsed_options
    return StepSweep(opts.llm_sweep_users, opts.llm_sweep_hold, warmup=opts.llm_sweep_warmup)


@events.test_start.add_listener
def _on_start(environment, **_kw):
    if environment.parsed_options is None:
        return
    sweep = _sweep(environment)
    t0 = time.time()
    environment.llm_phases = [
        {
            "label": p.label,
            "users": p.users,
            "start": t0 + p.start,
            "measure_start": t0 + p.measure_start,
            "end": t0 + p.end,
        }
        for p in sweep.phases()
    ]
    if sweep.warmup > 0:
        rt = plugin.runtime(environment)
        base = rt.in_warmup

        def in_warmup(t_start: float) -> bool:
            warm = base(t_start)
            tick = sweep.tick(t_start - t0)
            return warm or (tick is not None and tick.warmup)

        rt.in_warmup = in_warmup


@events.quitting.add_listener
def _on_quit(environment, **_kw):
    for p in getattr(environment, "llm_phases", []):
        log.info(
            "sweep step %s: measured %.3f..%.3f (epoch s)", p["label"], p["measure_start"], p["end"]
        )


class SweepShape(LoadTestShape):
    """Steps up the levels; once the run is saturated (noticed live), no higher level runs:
    a queue that grows without bound only grows faster with more users."""

    _sweep: StepSweep | None = None
    _saturated_users: int | None = None

    def tick(self):
        env = self.runner.environment
        if self._sweep is None:
            self._sweep = _sweep(env)
        t = self._sweep.tick(self.get_run_time())
        if t is None:
            return None
        live = getattr(getattr(env, "llm", None), "live_saturation", None)
        if live is not None and live.verdict is not None and self._saturated_users is None:
            self._saturated_users = t.users
        if self._saturated_users is not None and t.users > self._saturated_users:
            log.warning(
                "sweep stopped before %s: saturated at users=%d", t.label, self._saturated_users
            )
            now = time.time()
            env.llm_phases = [p for p in getattr(env, "llm_phases", []) if p["start"] < now]
            if env.llm_phases:
                env.llm_phases[-1]["end"] = min(env.llm_phases[-1]["end"], now)
            return None
        return t.locust()


class SweepUser(OpenAIChatUser):
    wait_time = constant(0)
    _prompts = None

    @task
    def ask(self) -> None:
        if SweepUser._prompts is None:
            SweepUser._prompts = wo.prompt_source(self.environment)
        p = next(SweepUser._prompts)
        self.chat(p.chat_messages(), max_tokens=p.max_tokens, prompt_tokens=p.prompt_tokens)
