"""The Locust event listeners of the plugin.

Two are global, registered when this module is imported (``locust_llm.users`` imports it, as
locust-plugins does): the parser hook that adds the ``--llm-*`` options and ``init``, which
checks the options, creates the runtime, starts the backend and mounts the web UI. Everything
else is bound to one Environment by closure when its runtime is created (:func:`runtime`), as
Locust's own ``setup_distributed_stats_event_listeners(events, stats)`` binds its stats:

* workers ship the collector's changed windows with every ``report_to_master``; the master
  merges them, so its summary is the whole test's;
* a new test, a stats reset or ``--reset-stats`` start the LLM metrics afresh;
* at quit the master (or the local runner) writes the summary and judges the SLOs.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from locust import events
from locust.event import EventHook
from locust.runners import STATE_RUNNING, STATE_SPAWNING, LocalRunner, WorkerRunner

from locust_llm.checks import SLOError, check_slos, split_slos
from locust_llm.clientcpu import cpu_seconds, runqueue_seconds
from locust_llm.credentials import valid_header_value
from locust_llm.options import LLMOptions, add_arguments
from locust_llm.runtime import LLMRuntime

__all__ = ["runtime", "CHECK_ONLY_ENV"]

# set by `locust-llm run --validate`: parse the options and run the start-up checks, then exit
# 0 before any file is written, backend started or server contacted
CHECK_ONLY_ENV = "LOCUST_LLM_CHECK_ONLY"

# Events other listeners (OpenTelemetry, Timescale, a user's own) can subscribe to, registered
# on Locust's Events object like its built-in ones: ``events.llm_request.add_listener(fn)``.
if not hasattr(events, "llm_request"):
    events.llm_request = EventHook()  # fn(result: LLMResult, environment)
if not hasattr(events, "llm_token"):
    # fn(result, index, t_ms, text, environment), fired by the stream loop as each token chunk
    # arrives (result: the request so far) — only with --llm-token-events
    events.llm_token = EventHook()


def runtime(environment: Any) -> LLMRuntime:
    """The environment's runtime, created (and its listeners bound) on first use, also for
    Environments built in tests."""
    rt = getattr(environment, "llm", None)
    if rt is None:
        rt = LLMRuntime(environment)
        environment.llm = rt
        bind(environment, rt)
    return rt


def bind(env: Any, rt: LLMRuntime) -> None:
    """Register the per-run listeners on ``env.events``, each closing over ``env`` and ``rt``."""
    ev = env.events

    def on_report_to_master(client_id: str, data: dict, **_kw: Any) -> None:
        data["llm"] = rt.collector.take_delta()
        data["llm_cpu"] = cpu_seconds() - rt.cpu_start
        runq = runqueue_seconds()
        if runq is not None and rt.runq_start is not None:
            data["llm_runq"] = runq - rt.runq_start

    def on_worker_report(client_id: str, data: dict, **_kw: Any) -> None:
        if data.get("llm"):
            rt.collector.merge_delta(data["llm"])
        if "llm_cpu" in data:
            rt.worker_cpu[client_id] = data["llm_cpu"]
        if "llm_runq" in data:
            rt.worker_runq[client_id] = data["llm_runq"]

    def on_test_start(environment: Any = None, **_kw: Any) -> None:
        # a new test (also the web UI's "New test" after a stop): Locust starts its stats
        # afresh without firing reset_stats, so the LLM metrics start afresh here too
        if environment is not None and environment is not env:
            return
        rt.configure()
        rt.restart()
        rt.worker_cpu.clear()
        rt.worker_runq.clear()
        rt.peak_users = 0
        rt.spawned_at = rt.stopped_at = None
        rt.cpu_start = cpu_seconds()
        rt.runq_start = runqueue_seconds()
        _live_saturation(env, rt)
        if not isinstance(env.runner, WorkerRunner) and not getattr(env, "shape_class", None):
            import logging

            from locust_llm.load_meta import traffic_lines

            out = logging.getLogger("locust.stats_logger")
            for line in traffic_lines(rt.load(0)):  # as vllm bench serve prints before sending
                out.info(line)

    def on_test_stop(environment: Any = None, **_kw: Any) -> None:
        if (environment is None or environment is env) and rt.stopped_at is None:
            rt.stopped_at = time.time()
            if rt.live_saturation is not None:
                rt.live_saturation.stop()

    def on_reset_stats(**_kw: Any) -> None:
        rt.restart(at=time.time())

    def on_spawning_complete(user_count: int, **_kw: Any) -> None:
        rt.peak_users = max(rt.peak_users, user_count)
        rt.spawned_at = time.time()
        # --reset-stats resets Locust's stats here without firing reset_stats: follow it
        if env.parsed_options is not None and getattr(env.parsed_options, "reset_stats", False):
            rt.restart(at=time.time())

    def on_quitting(environment: Any = None, **_kw: Any) -> None:
        if environment is not None and environment is not env:
            return
        runner = env.runner
        if isinstance(runner, LocalRunner) and runner.state in (STATE_SPAWNING, STATE_RUNNING):
            # Ctrl-C / SIGTERM mid-run: Locust fires quitting before it stops the users. Stop
            # them first, so requests in flight are recorded (as aborted) in the summary and no
            # user is still talking to the backend this listener is about to stop.
            runner.stop()
        try:
            if rt.gpu_sampler is not None:
                rt.gpu_sampler.stop()
            if not isinstance(env.runner, WorkerRunner):
                from locust_llm.quit import write_summary

                write_summary(env, rt)
        finally:
            rt.close()
            from locust_llm import embedded

            embedded.stop_backend(rt)

    ev.report_to_master.add_listener(on_report_to_master)
    ev.worker_report.add_listener(on_worker_report)
    ev.test_start.add_listener(on_test_start)
    ev.test_stop.add_listener(on_test_stop)
    ev.reset_stats.add_listener(on_reset_stats)
    ev.spawning_complete.add_listener(on_spawning_complete)
    ev.quitting.add_listener(on_quitting)


def _live_saturation(env: Any, rt: LLMRuntime) -> None:
    """(Re)start the once-a-second saturation check where the merged metrics are."""
    if rt.live_saturation is not None:
        rt.live_saturation.stop()
        rt.live_saturation = None
    if isinstance(env.runner, WorkerRunner):
        return
    from locust import runners

    from locust_llm.metrics.live_saturation import LiveSaturation, steady_from

    lag = 1.0  # the master's windows lag by the workers' report interval
    if isinstance(env.runner, runners.MasterRunner):
        lag += float(getattr(runners, "WORKER_REPORT_INTERVAL", 3.0))
    rt.live_saturation = LiveSaturation(rt.collector, lambda: steady_from(rt), lag=lag)
    rt.live_saturation.start()


@events.init_command_line_parser.add_listener
def _on_parser(parser: Any, **_kw: Any) -> None:
    from locust_llm.web.routes import remember_parser

    add_arguments(parser)
    remember_parser(parser)


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    if environment.parsed_options is None:  # an Environment built in code: no options to check
        runtime(environment)
        _setup_web_ui(environment)
        return
    opts = LLMOptions.of(environment.parsed_options)
    try:  # before anything is built from them, so a typo is one clean line
        check_slos(split_slos(opts.slo))
    except SLOError as e:
        sys.stderr.write(f"locust-llm: --llm-slo: {e}\n")
        sys.exit(2)
    check_only = bool(os.environ.get(CHECK_ONLY_ENV))
    if opts.records and not check_only and not isinstance(environment.runner, WorkerRunner):
        # a new run replaces the file (as --csv does); workers append to what the master
        # (or the local runner) truncated here, before any test has started
        if not opts.records_append:
            _truncate(opts.records)
    if opts.api_key and not valid_header_value(opts.api_key):
        # a key with a line break or non-Latin-1 text cannot go into an HTTP header: every
        # request would fail inside the HTTP client, with the key in the exception text
        sys.stderr.write(
            "locust-llm: the API key (--llm-api-key / OPENAI_API_KEY) contains a line break or "
            "characters that cannot be sent in an HTTP header; check how it was set\n"
        )
        sys.exit(2)
    from locust_llm.preflight import PreflightError, check_options, preflight

    try:
        check_options(environment.parsed_options)  # files and values: no user on a typo
    except PreflightError as e:
        _fail(str(e), skippable=False)  # --llm-skip-preflight skips the server check only
    if check_only:
        sys.exit(0)
    rt = runtime(environment)
    _setup_web_ui(environment)
    if isinstance(environment.runner, WorkerRunner):
        return
    from locust_llm import embedded

    embedded.start_backend(environment, rt)
    p = environment.parsed_options
    if getattr(p, "headless", False) or getattr(p, "autostart", False):
        # the web UI runs it when START is pressed: the host may be typed into the form
        try:
            preflight(environment, rt)
        except PreflightError as e:
            embedded.stop_backend(rt)
            _fail(str(e))
    if opts.gpu_telemetry or opts.backend == "gpu":
        from locust_llm.telemetry.launch import Sampler

        rt.gpu_sampler = Sampler.start(
            os.path.dirname(os.path.abspath(opts.summary)) if opts.summary else None
        )


def _setup_web_ui(environment: Any) -> None:
    from locust_llm.web import setup_web_ui

    setup_web_ui(environment)


def _fail(message: str, skippable: bool = True) -> None:
    from locust_llm.preflight import SKIP_HINT

    hint = f"; {SKIP_HINT}" if skippable and "pre-flight" not in message else ""
    sys.stderr.write(f"locust-llm: pre-flight failed: {message}{hint}\n")
    sys.exit(1)


def _truncate(path: str) -> None:
    from locust_llm.records import truncate

    try:
        truncate(path)
    except OSError as e:
        sys.stderr.write(f"locust-llm: cannot write --llm-records {path}: {e}\n")
        sys.exit(1)
