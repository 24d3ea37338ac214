"""Trace replay, the Locust glue: ``locustfiles/trace.py`` sends a trace's records at their times.

Open loop, as ``rate.py``: Locust users are slots. A free slot takes this process's next
record (``TraceSchedule``, its share ``index``/``count`` of the one global sequence, from the
``llm_rate_split`` message), sleeps until it is due and sends it. The trace's time 0 is once
every user is spawned (a ramp is not part of the trace, and a worker still spawning would
send its first records late): the local runner's ``spawning_complete``, or a start time the
master sends every worker (``llm_trace_start``) when its own fires. When every slot is busy the next record waits and goes out late, at once,
never skipped; ``schedule_lag`` (sent - scheduled, ms) says by how much, on the request's
record and as a merged metric.

The trace is loaded (and checked) by the pre-flight, so a bad line stops the run before
any user spawns. Without ``--llm-trace-loop`` the run ends with the trace: when a process
has sent its share and those requests have finished, it stops (local runner) or tells the
master, which stops the run once every worker has; headless runs then quit, as ``-t`` does.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import gevent
import gevent.event
from locust import constant, events, task
from locust.exception import StopUser
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING, MasterRunner, WorkerRunner
from locust.user.users import LOCUST_STATE_STOPPING

from locust_llm.metrics.record import LLMResult
from locust_llm.options import LLMOptions
from locust_llm.users import OpenAIChatUser
from locust_llm.workload import locust_options as wo
from locust_llm.workload.trace import FORMATS as TRACE_FORMATS
from locust_llm.workload.trace import (
    MOONCAKE_BLOCK_TOKENS,
    TraceError,
    TraceRecord,
    detect_format,
    load_trace,
)
from locust_llm.workload.trace_prompts import record_prompt
from locust_llm.workload.trace_schedule import Due, TraceSchedule, replay_fields

__all__ = ["TraceUser", "register"]

log = logging.getLogger("locust_llm")

DONE_MESSAGE = "llm_trace_done"
START_MESSAGE = "llm_trace_start"
START_AHEAD_S = 0.25  # master -> workers: the shared start, far enough ahead to arrive first

_TRACES: dict[tuple[str, str], tuple[str, list[TraceRecord]]] = {}
_STATE: dict[str, Any] = {}
_DONE: dict[str, int] = {}  # master: worker id -> records it sent, once it has sent its share
_START: dict[str, Any] = {"at": None, "set": gevent.event.Event()}  # this test's time 0 (epoch)
_REGISTERED = False


def register() -> None:
    """The options, the pre-flight check and the end-of-trace messages, once per process."""
    global _REGISTERED
    if _REGISTERED:
        return
    _REGISTERED = True
    wo.register()
    from locust_llm.preflight import add_option_check

    add_option_check(check_trace_options)
    events.init.add_listener(_on_init)
    events.test_start.add_listener(_on_test_start)
    events.test_stop.add_listener(lambda **_kw: _STATE.clear())


def _load(o: LLMOptions) -> tuple[str, list[TraceRecord]]:
    """(format, records) of ``--llm-trace``, parsed once per process."""
    key = (o.trace or "", o.trace_format)
    if key not in _TRACES:
        path = o.trace or ""
        records = load_trace(path, o.trace_format)  # checks the file and the format name
        fmt = o.trace_format if o.trace_format != "auto" else detect_format(path)
        _TRACES[key] = (fmt, records)
    return _TRACES[key]


def load(o: LLMOptions) -> list[TraceRecord]:
    return _load(o)[1]


def _schedule(o: LLMOptions, index: int = 0, count: int = 1) -> TraceSchedule:
    return TraceSchedule(load(o), speed=o.trace_speed, loop=o.trace_loop, index=index, count=count)


def check_trace_options(parsed: Any) -> None:
    """The trace file and the replay options, before any user spawns."""
    from locust_llm.preflight import PreflightError

    if parsed is None:
        return
    o = LLMOptions.of(parsed)
    if not o.trace:
        raise PreflightError("trace.py needs --llm-trace FILE (the trace to replay)")
    if o.trace_format != "auto" and o.trace_format not in TRACE_FORMATS:
        raise PreflightError(
            f"--llm-trace-format {o.trace_format!r} is unknown; expected auto, "
            f"{', '.join(TRACE_FORMATS)}"
        )
    if not o.trace_speed > 0:
        raise PreflightError(f"--llm-trace-speed must be > 0, got {o.trace_speed:g}")
    if not o.trace_max_lag >= 0:
        raise PreflightError(f"--llm-trace-max-lag must be >= 0 ms, got {o.trace_max_lag:g}")
    try:
        records = load(o)
    except TraceError as e:
        raise PreflightError(f"--llm-trace {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PreflightError(f"--llm-trace {o.trace}: cannot read ({e})") from None
    log.info(
        "locust-llm: trace %s: %d records over %.1f s (%.2f req/s at speed %g)",
        o.trace, len(records), records[-1].time, _schedule(o).requested_rate, o.trace_speed,
    )  # fmt: skip


def summary_fields(environment: Any, summary: dict[str, Any]) -> None:
    """Add the ``trace`` block to a run summary."""
    o = LLMOptions.of(environment.parsed_options)
    sched = _schedule(o)
    summary["trace"] = {
        "file": o.trace,
        "speed": o.trace_speed,
        "loop": o.trace_loop,
        "block_tokens": o.trace_block_tokens,
        **replay_fields(
            summary,
            records=len(sched.records),
            requested_rate=sched.requested_rate,
            max_lag_ms=o.trace_max_lag,
        ),
    }


def _on_init(environment: Any, **_kw: Any) -> None:
    environment.llm_open_loop = True
    from locust_llm.listeners import runtime

    rt = runtime(environment)
    if summary_fields not in rt.summary_hooks:
        rt.summary_hooks.append(summary_fields)
    o = LLMOptions.of(environment.parsed_options)
    if o.trace and o.trace_speed > 0:
        rt.load_override = {  # the summary's meta and the lines printed at start
            "arrival": "trace",
            "request_rate": _schedule(o).requested_rate,
            "burstiness": None,
            "dataset": o.trace,
            "prompt_tokens": None,
            "max_tokens": None,  # the trace's own lengths
        }
    runner, env = environment.runner, environment
    env.events.spawning_complete.add_listener(lambda **_k: _on_spawning_complete(env))
    if isinstance(runner, MasterRunner):

        def on_done(environment: Any = None, msg: Any = None, **_k: Any) -> None:
            _DONE[msg.node_id] = int(msg.data.get("sent", 0))
            if len(_DONE) >= runner.worker_count:
                _end_run(env, sum(_DONE.values()))

        runner.register_message(DONE_MESSAGE, on_done)
    elif isinstance(runner, WorkerRunner):

        def on_start(environment: Any = None, msg: Any = None, **_k: Any) -> None:
            _set_start(float(msg.data["start"]))

        runner.register_message(START_MESSAGE, on_start)


def _set_start(at: float) -> None:
    if _START["at"] is None:
        _START["at"] = at
        _START["set"].set()


def _on_spawning_complete(environment: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner) or _START["at"] is not None:
        return  # a worker waits for the master's start; later spawns (the web UI) keep it
    if isinstance(runner, MasterRunner):
        at = time.time() + START_AHEAD_S
        for cid in list(runner.clients):
            runner.send_message(START_MESSAGE, {"start": at}, client_id=cid)
        _set_start(at)
    else:
        _set_start(time.time())


def _on_test_start(environment: Any, **_kw: Any) -> None:
    runner = environment.runner
    _DONE.clear()
    _START.update(at=None, set=gevent.event.Event())
    if isinstance(runner, MasterRunner):
        users = getattr(environment.parsed_options, "num_users", None) or 0
        if 0 < users < runner.worker_count:
            log.error(
                "locust-llm: -u %d users over %d worker processes: a process with no user "
                "never sends its share of the trace; use -u >= %d",
                users, runner.worker_count, runner.worker_count,
            )  # fmt: skip


def _end_run(environment: Any, sent: int) -> None:
    """The trace is over: stop the users, and quit a headless run (as ``-t`` does)."""
    runner = environment.runner
    if runner.state in (STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP):
        return  # stopped already (-t, Ctrl-C, the web UI): nothing to end
    headless = bool(getattr(environment.parsed_options, "headless", False))
    log.info(
        "locust-llm: trace replay finished (%d requests sent), %s",
        sent, "shutting down" if headless else "stopping test",
    )  # fmt: skip
    gevent.spawn(runner.quit if headless else runner.stop)


class _Replay:
    """One process's share of the replay: which record is next, how many are in flight."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.options = o = LLMOptions.of(environment.parsed_options)
        index, count, _ = wo.split_info()
        self.start: float = _START["at"]
        self.dues = iter(_schedule(o, index, count))
        fmt, records = _load(o)
        self.rows = len(records)
        # block ids are Mooncake's: the other formats' lengths are replayed as recorded
        self.block_tokens = o.trace_block_tokens if fmt == "mooncake" else MOONCAKE_BLOCK_TOKENS
        self.exhausted = False
        self.in_flight = 0
        self.sent = 0
        self.ended = False

    def take(self) -> Due | None:
        if not self.exhausted:
            due = next(self.dues, None)
            if due is not None:
                self.in_flight += 1
                return due
            self.exhausted = True
        self.check_end()
        return None

    def release(self, sent: bool) -> None:
        self.in_flight -= 1
        self.sent += sent
        if self.exhausted:
            self.check_end()

    def check_end(self) -> None:
        if self.ended or self.in_flight or not self.exhausted:
            return
        self.ended = True
        runner = self.environment.runner
        if isinstance(runner, WorkerRunner):
            runner.send_message(DONE_MESSAGE, {"sent": self.sent})
        else:
            _end_run(self.environment, self.sent)


def _replay(environment: Any) -> _Replay:
    """Built on first use, once every user is spawned (the trace's time 0 is known; on a
    worker the master's split message has arrived long before)."""
    _START["set"].wait()
    if "replay" not in _STATE:
        _STATE["replay"] = _Replay(environment)
    return _STATE["replay"]


class TraceUser(OpenAIChatUser):
    """An open-loop slot replaying the trace: each task sends the next due record."""

    abstract = True
    wait_time = constant(0)
    _due: tuple[float, Due, int] | None = None

    @task
    def send(self) -> None:
        rp = _replay(self.environment)
        due = rp.take()
        if due is None:  # this process's share is sent: the slot is done
            raise StopUser()
        sent = False
        try:
            o = rp.options
            p = record_prompt(due.record, o.seed, rp.block_tokens, due.loop)
            with contextlib.suppress(RuntimeError):  # a failed lookup fails the send below
                _ = self.model  # a worker's first lookup of /v1/models: before, not in, the lag
            scheduled = rp.start + due.at
            delay = scheduled - time.time()
            if delay > 0:
                gevent.sleep(delay)
            if self._state == LOCUST_STATE_STOPPING:
                return  # the run ended while this slot waited: the record was not due in it
            self._due = (scheduled, due, rp.rows)
            sent = True
            self.chat(
                p.chat_messages(),
                max_tokens=max(1, p.max_tokens) if p.max_tokens is not None else None,
                prompt_tokens=p.prompt_tokens,
            )
        finally:
            self._due = None
            rp.release(sent)

    def annotate(self, res: LLMResult) -> None:
        if self._due is not None:
            scheduled, due, rows = self._due
            # a timer can wake a fraction of a millisecond early: that is on time, not early
            res.schedule_lag = max(0.0, (res.t_start - scheduled) * 1000.0)
            res.trace_index, res.trace_loop = due.index % rows, due.loop
