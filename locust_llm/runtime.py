"""Per-process state of a run: one :class:`LLMRuntime` per Locust Environment.

Users reach it as ``environment.llm``. :meth:`LLMRuntime.finish` accounts one finished request:
the ``TTFT``/``TPOT``/``ITL`` stats rows (type ``LLM``: shown everywhere, kept out of
"Aggregated"), the collector, the JSONL record and the ``llm_request`` event.
:meth:`LLMRuntime.summary` is the one summary builder: ``--llm-summary`` at quit and, with
``live=True``, the web UI's views while the test runs.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from locust.event import EventHook

from locust_llm import __version__
from locust_llm.checks import check_slos, evaluate, goodput_predicate, split_slos
from locust_llm.clientcpu import cpu_seconds, runqueue_seconds
from locust_llm.credentials import redact, without_credentials
from locust_llm.metrics.collector import Collector
from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.rollup import LiveFold
from locust_llm.metrics.summary import summarize
from locust_llm.options import LLMOptions
from locust_llm.records import RecordsWriter
from locust_llm.stats_rows import log_result, log_window
from locust_llm.workload.cancel import CancelPlan, cancel_plan
from locust_llm.workload.images import ImagePlan, image_plan
from locust_llm.workload.warmup import Warmup

__all__ = ["LLMRuntime"]

log = logging.getLogger("locust_llm")

_TOKENIZERS: dict[str, Any] = {}


def _output_tokenizer(path: str | None) -> Any:
    """The tokenizer that counts output tokens when the server sends no usage (or None)."""
    if not path:
        return None
    from locust_llm.workload.tokens import HFTokenizer

    cached = _TOKENIZERS.get(path)
    if cached is None:
        cached = _TOKENIZERS[path] = HFTokenizer.from_file(path)
    return cached


class LLMRuntime:
    """Per-process state. Created at ``init``; users reach it as ``environment.llm``."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        for name in ("llm_request", "llm_token"):  # Environments built with their own Events
            if not hasattr(environment.events, name):
                setattr(environment.events, name, EventHook())
        self.model: str | None = None
        self.collector = Collector()
        self.live = LiveFold(self.collector)  # the web UI's polls fold only what is new
        self.warmup = Warmup()
        self.reset_at = 0.0  # requests started before the last reset are left out
        self._records: RecordsWriter | None = None
        self._records_path: str | None = None
        self.records_failed = False
        self.configure()
        self._rng = random.Random(0)
        self._models_lock: Any = None
        self._stamp_mode_logged = False
        self.cpu_start = cpu_seconds()
        self.runq_start = runqueue_seconds()
        self.worker_cpu: dict[str, float] = {}
        self.worker_runq: dict[str, float] = {}  # workers whose kernel reports the wait
        self.stack: Any = None  # locust_llm.backends.Stack started for this run
        self.peak_users = 0
        self.backoff_logged: set[str] = set()  # failure kinds already logged by users
        self.gpu_sampler: Any = None  # locust_llm.telemetry.launch.Sampler
        self.spawned_at: float | None = None  # epoch: load fully spawned (saturation window)
        self.stopped_at: float | None = None  # epoch: users told to stop (drain left out)
        self.live_saturation: Any = None  # locust_llm.metrics.live_saturation.LiveSaturation
        self.collector.groups.on_window = self._group_window
        # a locustfile's own additions (trace replay): fn(environment, summary) run on the
        # full summary before the SLOs are judged, and load fields replacing the options'
        self.summary_hooks: list[Any] = []
        self.load_override: dict[str, Any] = {}

    def _is_worker(self) -> bool:
        from locust.runners import WorkerRunner

        return isinstance(self.environment.runner, WorkerRunner)

    def _group_window(self, kind: str, key: str, w: Any) -> None:
        """A group's rows get a seed or a worker's report (never on a worker: its master
        makes the rows from what it ships)."""
        if not self._is_worker():
            log_window(self.environment.stats, kind, key, w)

    def configure(self) -> None:
        """(Re)read the ``--llm-*`` options: at init, and on workers again at test start,
        because Locust ships the master's custom options with every spawn message."""
        o = self.options = LLMOptions.of(self.environment.parsed_options)
        self.model = o.model or self.model
        self.max_tokens: int | None = o.max_tokens
        self.prompt_tokens: int = o.prompt_tokens
        self.ignore_eos: bool = bool(o.ignore_eos)
        self.api_key = o.api_key
        self.auth_header: str | None = f"Bearer {o.api_key}" if o.api_key else None
        self.warmup.seconds = float(o.warmup)
        self.warmup.requests = int(o.warmup_requests)
        self.token_events: bool = bool(o.token_events)
        self.timestamps_mode: str = o.timestamps
        self.timeout: float | None = o.timeout  # None: the user class's network_timeout
        self.output_tokenizer = _output_tokenizer(o.tokenizer)
        self.continuous_usage: bool = bool(o.continuous_usage)
        # checked by the pre-flight before this runs: a bad value never gets here
        # each worker its own decision stream (the same for the same worker index and seed)
        worker = max(getattr(getattr(self.environment, "runner", None), "worker_index", 0), 0)
        self.cancel: CancelPlan | None = cancel_plan(
            o.cancel_rate, o.cancel_after, o.seed, stream=worker
        )
        self.images: ImagePlan = image_plan(o.images, o.image_size, o.seed)
        self.slos = check_slos(split_slos(o.slo))
        self.collector.good = goodput_predicate(self.slos)
        self.summary_path: str | None = o.summary
        if o.records != self._records_path:
            self.close()
            self._records_path = o.records
            if o.records:
                self._records = RecordsWriter(o.records)

    def restart(self, at: float | None = None) -> None:
        """Start the LLM metrics afresh (a new test, a stats reset): requests started before
        ``at`` (epoch) belong to neither side."""
        self.collector.reset()
        self.live = LiveFold(self.collector)
        self.warmup.begin(None)
        if at is not None:
            self.reset_at = at

    # -- used by users --------------------------------------------------------------------
    def install_client(self, client: Any, host: str | None) -> bool:
        """Per-user client setup: pooled sockets the server closed while idle are dropped
        before reuse (``locust_llm.keepalive``), and kernel receive stamps unless
        ``--llm-timestamps user`` (or unsupported: not Linux, HTTPS). Returns True when this
        user's responses will carry kernel stamps."""
        from locust_llm.keepalive import guard_keepalive

        guard_keepalive(client)
        mode = self.timestamps_mode
        kernel = False
        if mode != "user":
            from locust_llm.timestamps import enable_kernel_timestamps

            kernel = enable_kernel_timestamps(client, host)
        if not self._stamp_mode_logged:
            self._stamp_mode_logged = True
            if kernel:
                log.info("locust-llm: token arrival stamped by the kernel (SO_TIMESTAMPNS)")
            elif mode == "kernel":
                log.warning(
                    "locust-llm: --llm-timestamps kernel is not available for %s (HTTPS or "
                    "not Linux): token arrival stamped in user space",
                    host,
                )
            else:
                log.info("locust-llm: token arrival stamped in user space (perf_counter)")
        return kernel

    def in_warmup(self, t_start: float) -> bool:
        """Warm-up by time (``--llm-warmup``) or by count (``--llm-warmup-requests``)."""
        return self.warmup.classify(t_start)

    def default_prompt(self) -> str:
        """A synthetic prompt of ``--llm-prompt-tokens`` words (one word ≈ one token)."""
        from locust_llm.workload.synthetic import fit_text

        text, _ = fit_text(self._rng, self.prompt_tokens)
        return text

    def resolve_model(self, host: str | None) -> str:
        if self.model:
            return self.model
        import gevent.lock

        from locust_llm.preflight import first_model

        if self._models_lock is None:
            self._models_lock = gevent.lock.Semaphore()
        with self._models_lock:
            if not self.model:
                try:
                    self.model = first_model(host, self.auth_header, self.timeout or 60.0)
                except RuntimeError as e:
                    raise RuntimeError(redact(str(e), self.api_key)) from None
        return self.model

    def finish(self, res: LLMResult) -> None:
        """Account one finished request: stats rows, collector, record, event."""
        self.collector.request_finished(time.time())
        if res.t_start < self.reset_at:
            res.warmup = True  # in flight across a stats reset: it belongs to neither side
        env = self.environment
        grouped = self.collector.add(res)
        if not res.warmup and res.ok:
            # group rows: here for local runs; a master makes them from the workers' groups
            log_result(env.stats, res, [] if self._is_worker() else grouped)
        if self._records is not None:
            try:
                self._records.write(res.to_json_line())
            except OSError as e:
                log.error(
                    "cannot write --llm-records %s (%s); records stop here, the run goes on",
                    self._records_path,
                    e,
                )
                self.records_failed = True
                self.close()
        env.events.llm_request.fire(result=res, environment=env)

    # -- summary ---------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """What the summary says about the run itself (never a credential)."""
        import locust

        return {
            "model": self.model,
            "host": without_credentials(self.environment.host),
            "peak_users": self.peak_users,
            "timestamps": self.timestamps_mode,
            "locust_version": locust.__version__,
            "locust_llm_version": __version__,
            "warmup_s": self.warmup.seconds,
            "warmup_requests": self.warmup.requests,
            "slo": [s.expr for s in self.slos],
        }

    def server_prefix_cache(self) -> dict[str, dict[str, Any]]:
        """vLLM's prefix-cache queries, hits and hit rate per replica since the test started,
        from the web UI's scraper (a run without the web UI has none)."""
        scraper = getattr(self.environment, "_llm_scraper", None)
        if scraper is None:
            return {}
        return {
            t["name"]: t["prefix_cache"]
            for t in scraper.snapshot()["targets"]
            if t["kind"] == "vllm" and t["prefix_cache"]["queries"]
        }

    def summary(self, live: bool = False, folded: bool = False) -> dict[str, Any]:
        """The run summary (vLLM field names). ``live``: the cheap view the web UI polls
        while the test runs, without intervals, histograms, steps, saturation and GPU, from
        the live fold (seconds already folded are not folded again). ``folded``: the whole
        summary from the live fold (the web UI's download); at quit every window is folded
        afresh, the numbers are the same."""
        if live:
            s = summarize(
                self.collector,
                meta=self.meta(),
                include_intervals=False,
                include_histograms=False,
                include_groups=False,
                fold=self.live.view(),
            )
            s["slo"] = evaluate(self.slos, s)
            if self.live_saturation is not None:
                s["saturation"] = self.live_saturation.to_json()
            return s
        s = summarize(self.collector, meta=self.meta(), fold=self.live.view() if folded else None)
        s["meta"].update(self.load(s["total_requests"], s.get("started_at")))
        cpu = self.cpu_seconds()
        s["client_cpu_s"] = cpu
        s["client_processes"] = max(len(self.worker_cpu), 1)
        span = s["duration"] * s["client_processes"]
        s["client_cpu_share"] = cpu / span if span > 0 else None
        runq = self.runqueue_seconds()
        s["client_runqueue_s"] = runq
        s["client_runqueue_share"] = runq / span if runq is not None and span > 0 else None
        from locust_llm.metrics.health import judge

        v = judge(
            s["client_bound"],
            s["client_bound_reason"],
            s["client_cpu_share"],
            s["client_runqueue_share"],
        )
        s["client_bound"], s["client_bound_reason"] = v.client_bound, v.reason
        s["client_read_delay"] = v.delayed
        phases = getattr(self.environment, "llm_phases", None)  # set by stepped shapes
        if phases:
            from locust_llm.metrics.summary import summarize_range

            s["steps"] = [
                {
                    "label": p["label"],
                    "users": p["users"],
                    **summarize_range(self.collector, p["measure_start"], p["end"]),
                }
                for p in phases
            ]
        for hook in self.summary_hooks:
            hook(self.environment, s)
        s["slo"] = evaluate(self.slos, s)
        server = self.server_prefix_cache()
        if server:
            s["server_prefix_cache"] = server
        s["saturation"] = self.saturation(s.get("intervals") or [])
        if self.gpu_sampler is not None:
            s["gpu"] = self.gpu_summary(s)
        return s

    def gpu_summary(self, s: dict[str, Any]) -> dict[str, Any]:
        """GPU figures over the measured window, per replica through the plan's GPU groups."""
        from locust_llm.telemetry.aggregate import aggregate, read_samples

        groups = {r.name: r.gpus for r in getattr(self.stack, "replicas", []) if r.gpus}
        out = aggregate(
            read_samples(self.gpu_sampler.path),
            output_tokens=s.get("total_output_tokens"),
            start=s.get("started_at"),
            end=s.get("ended_at"),
            groups=groups or None,
        )
        out["samples_file"] = str(self.gpu_sampler.path)
        return out

    def saturation(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The over-saturation verdict on the measured seconds: after spawning and warm-up,
        before the users were told to stop (ramps and drains are trends, not a queue)."""
        from locust_llm.metrics.saturation import detect

        start = max(self.spawned_at or 0.0, (self.warmup.start or 0.0) + self.warmup.seconds)
        end = self.stopped_at - 1.0 if self.stopped_at else None
        return detect(rows, start_after=start + 1.0 if start else None, end_before=end).to_json()

    def load(self, num_requests: int, started_at: float | None = None) -> dict[str, Any]:
        """What load this run offered, in ``vllm bench serve``'s terms."""
        from locust_llm.load_meta import describe_load

        env = self.environment
        opts = env.parsed_options
        users = self.peak_users or int(getattr(opts, "num_users", None) or 1)
        out = describe_load(
            opts,
            open_loop=bool(getattr(env, "llm_open_loop", False)),
            users=users,
            num_requests=num_requests,
            model=self.model,
            started_at=started_at,
        )
        out.update(self.load_override)
        return out

    def cpu_seconds(self) -> float:
        """CPU used by the load generator since the test started: this process's, or on a
        master the sum of what its workers reported (the master itself only merges)."""
        if self.worker_cpu:
            return sum(self.worker_cpu.values())
        return cpu_seconds() - self.cpu_start

    def runqueue_seconds(self) -> float | None:
        """Time the load generator's main thread waited for a CPU since the test started (the
        sum over workers on a master), None where the kernel does not report it."""
        if self.worker_cpu:
            if len(self.worker_runq) < len(self.worker_cpu):
                return None
            return sum(self.worker_runq.values())
        now = runqueue_seconds()
        if now is None or self.runq_start is None:
            return None
        return now - self.runq_start

    def close(self) -> None:
        if self._records is not None:
            self._records.close()
            self._records = None
