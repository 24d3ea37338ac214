"""The Locust glue: ``--llm-*`` options, the per-process runtime, events, stats rows, merging.

Importing this module (``locust_llm.users`` does) registers the listeners on Locust's global
``events``, the way locust-plugins does. Everything measured goes through one
:class:`LLMRuntime` per Locust process (``environment.llm``):

* users call :meth:`LLMRuntime.finish` once per request; it logs the ``TTFT``/``TPOT``/``ITL``
  stats rows (type ``LLM``: shown everywhere, kept out of "Aggregated"), folds the request into
  the collector, appends the JSONL record and fires ``llm_request``;
* workers ship the collector's changed windows with every ``report_to_master``; the master
  merges them, so its summary is the whole test's;
* at quit the master (or the local runner) writes the summary and judges the SLOs.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import sys
import time
from typing import Any

import locust.stats
import orjson
from locust import events
from locust.event import EventHook
from locust.runners import STATE_RUNNING, STATE_SPAWNING, LocalRunner, WorkerRunner

import locust_llm.web  # noqa: F401,E402  (LLM tab, /llm/... endpoints, /llm/metrics)
from locust_llm import __version__
from locust_llm.checks import (
    SLO_EXIT_CODE,
    SLOError,
    check_slos,
    evaluate,
    format_rows,
    goodput_predicate,
    split_slos,
)
from locust_llm.metrics.collector import Collector
from locust_llm.metrics.locust_grid import on_locust_grid
from locust_llm.metrics.record import LLMResult
from locust_llm.metrics.summary import summarize

__all__ = ["LLMRuntime", "runtime", "add_arguments"]

log = logging.getLogger("locust_llm")

# Events other listeners (OpenTelemetry, Timescale, a user's own) can subscribe to, registered
# on Locust's Events object like its built-in ones: ``events.llm_request.add_listener(fn)``.
if not hasattr(events, "llm_request"):
    events.llm_request = EventHook()  # fn(result: LLMResult, environment)
if not hasattr(events, "llm_token"):
    # fn(result, index, t_ms, text, environment), fired by the stream loop as each token chunk
    # arrives (result: the request so far) — only with --llm-token-events
    events.llm_token = EventHook()

SHORT_OUTPUT_RATIO = 0.95  # warn when outputs are this much shorter than max_tokens asked
BACKENDS = ("auto", "emulator", "cpu", "gpu", "external", "none")
# set by `locust-llm run --validate`: parse the options and run the start-up checks, then exit
# 0 before any file is written, backend started or server contacted
CHECK_ONLY_ENV = "LOCUST_LLM_CHECK_ONLY"
LB_POLICIES = ("least_conn", "round_robin", "hash", "random_two_least_conn")


def _positive_int(text: str) -> int:
    import argparse

    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


class Verbatim(str):
    """Help text shown as written both by ``--help`` (argparse %-formats it, so ``1%`` would
    need ``1%%``) and by the web form (which shows the raw text, so ``%%`` would show)."""

    def __mod__(self, _params: Any) -> str:
        return str(self)


def add_arguments(parser: Any) -> None:
    """Register ``--llm-*`` options on Locust's parser. Only options a new test started from
    the web form can still change are in the form; the rest are read once at start."""
    if "--llm-model" in getattr(parser, "_option_string_actions", {}):
        return  # already registered on this parser (the --help hook, then the plugin)

    def a(*args: Any, include_in_web_ui: bool = False, **kw: Any) -> Any:
        return parser.add_argument(*args, include_in_web_ui=include_in_web_ui, **kw)

    a(
        "--llm-model",
        default=None,
        include_in_web_ui=True,
        help="Model to request (default: the first id from the server's /v1/models)",
    )
    a(
        "--llm-max-tokens",
        type=_positive_int,
        default=128,
        include_in_web_ui=True,
        help="max_tokens per request (default 128)",
    )
    a(
        "--llm-prompt-tokens",
        type=_positive_int,
        default=128,
        include_in_web_ui=True,
        help="Length of the default synthetic prompt, in tokens (default 128)",
    )
    a(
        "--llm-ignore-eos",
        action="store_true",
        default=False,
        include_in_web_ui=True,
        help="Send ignore_eos so every request generates exactly max_tokens (vLLM extension)",
    )
    a(
        "--llm-api-key",
        default=os.environ.get("OPENAI_API_KEY", ""),
        # not in the web UI: Locust puts a secret option's value in the page source (only
        # the input box is masked), so anyone who can open the UI could read the key
        include_in_web_ui=False,
        help="Bearer API key (default: $OPENAI_API_KEY); never logged, not shown in the web UI",
    )
    a(
        "--llm-records",
        default=None,
        help="Write one JSON line per finished request to PATH (replaced at each run, as "
        "--csv is; see --llm-records-append)",
    )
    a(
        "--llm-records-append",
        action="store_true",
        default=False,
        help="Append to an existing --llm-records file instead of replacing it",
    )
    a(
        "--llm-summary",
        default=None,
        help="Write the LLM summary JSON (vLLM field names) to PATH at quit",
    )
    a(
        "--llm-slo",
        action="append",
        default=None,  # not []: Locust's form would convert the typed text with int()
        include_in_web_ui=True,
        help=Verbatim(
            "SLO checked at quit, repeatable (comma-separated in the web form): "
            "ttft_p95<=800ms, itl_p99<=60ms, error_rate<=1%, output_throughput>=500. "
            "Any FAIL makes locust exit with code 3"
        ),
    )
    a(
        "--llm-warmup",
        type=float,
        default=0.0,
        include_in_web_ui=True,
        help="Seconds after the first request whose requests are excluded from LLM metrics",
    )
    a(
        "--llm-warmup-requests",
        type=int,
        default=0,
        include_in_web_ui=True,
        help="Number of first requests (per Locust process) excluded from LLM metrics",
    )
    a(
        "--llm-timeout",
        type=float,
        default=None,
        help="Longest silence (s) tolerated while waiting for the next bytes of a stream "
        "(default: the user class's network_timeout, 600 s for LLM users)",
    )
    a(
        "--llm-token-events",
        action="store_true",
        default=False,
        help="Fire the llm_token event for every token chunk (costs CPU per token)",
    )
    a(
        "--llm-backend",
        choices=BACKENDS,
        default="auto",
        help="What to start before the test: auto = the built-in emulator when no --host is "
        "given; emulator/cpu/gpu = replicas (behind nginx if several); external/none = nothing",
    )
    a(
        "--llm-tp",
        type=_positive_int,
        default=1,
        help="Tensor-parallel size per replica (gpu backend)",
    )
    a(
        "--llm-replicas",
        type=_positive_int,
        default=None,
        help="Number of replicas (default: from the plan)",
    )
    a("--llm-lb", choices=LB_POLICIES, default="least_conn", help="nginx balancing policy")
    a("--llm-vllm-cmd", default=None, help="Executable replacing 'vllm serve' (e.g. the emulator)")
    a(
        "--llm-serve-args",
        default="",
        help='Extra arguments for every replica, e.g. "--max-num-seqs 32 --emu-itl-ms 20"',
    )
    a("--llm-run-dir", default=None, help="Folder for backend logs (default: a temporary folder)")
    a(
        "--llm-timestamps",
        choices=("auto", "kernel", "user"),
        default="auto",
        help="Token arrival stamps: kernel receive time (Linux, plain HTTP) or user space",
    )
    if "--llm-tokenizer" not in getattr(parser, "_option_string_actions", {}):
        a(
            "--llm-tokenizer",
            default=None,
            help="Local tokenizer.json (or its folder): exact prompt lengths, and output "
            "tokens when the server sends no usage",
        )
    a(
        "--llm-continuous-usage",
        action="store_true",
        default=False,
        help="Ask for usage in every chunk (vLLM's stream_options.continuous_usage_stats): "
        "tokens per chunk and a token-weighted ITL",
    )
    a(
        "--llm-gpu-telemetry",
        action="store_true",
        default=False,
        help="Sample NVML per GPU every 0.2 s in a separate process (on with --llm-backend gpu): "
        "utilization, power, energy per output token in the summary",
    )
    a(
        "--llm-metrics-url",
        action="append",
        default=None,
        help="Server /metrics URL(s) to scrape for the LLM tab (default: the started backend's)",
    )
    a(
        "--llm-skip-preflight",
        action="store_true",
        default=False,
        help="Start the users without the pre-flight check (server reachable, model served, "
        "one streamed request): to measure a server that fails",
    )


@events.init_command_line_parser.add_listener
def _on_parser(parser: Any, **_kw: Any) -> None:
    add_arguments(parser)


def _output_tokenizer(path: str | None) -> Any:
    """The tokenizer that counts output tokens when the server sends no usage (or None)."""
    if not path:
        return None
    from locust_llm.workload.tokens import HFTokenizer

    cached = _TOKENIZERS.get(path)
    if cached is None:
        cached = _TOKENIZERS[path] = HFTokenizer.from_file(path)
    return cached


_TOKENIZERS: dict[str, Any] = {}


class LLMRuntime:
    """Per-process state. Created at ``init``; users reach it as ``environment.llm``."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        for name in ("llm_request", "llm_token"):  # Environments built with their own Events
            if not hasattr(environment.events, name):
                setattr(environment.events, name, EventHook())
        self.model: str | None = None
        self.collector = Collector()
        self.first_start: float | None = None
        self.started = 0  # requests dispatched since start/reset (for --llm-warmup-requests)
        self.reset_at = 0.0  # requests started before the last reset are left out
        self._records = None
        self._records_path: str | None = None
        self.records_failed = False
        self.configure()
        self._rng = random.Random(0)
        self._models_lock = None
        self._stamp_mode_logged = False
        self.cpu_start = time.process_time()
        self.worker_cpu: dict[str, float] = {}
        self.stack = None
        self.peak_users = 0
        self.backoff_logged: set[str] = set()  # failure kinds already logged by users
        self.gpu_sampler: Any = None  # locust_llm.telemetry.launch.Sampler
        self.spawned_at: float | None = None  # epoch: load fully spawned (saturation window)
        self.stopped_at: float | None = None  # epoch: users told to stop (drain left out)

    def configure(self) -> None:
        """(Re)read the ``--llm-*`` options: at init, and on workers again at test start,
        because Locust ships the master's custom options with every spawn message."""
        opts = self.environment.parsed_options

        def get(k: str, d: Any = None) -> Any:
            return getattr(opts, k, d) if opts is not None else d

        self.model = get("llm_model") or self.model
        self.max_tokens: int | None = get("llm_max_tokens", 128)
        self.prompt_tokens: int = get("llm_prompt_tokens", 128)
        self.ignore_eos: bool = bool(get("llm_ignore_eos", False))
        api_key = (get("llm_api_key", os.environ.get("OPENAI_API_KEY", "")) or "").strip()
        self.api_key = api_key
        self.auth_header: str | None = f"Bearer {api_key}" if api_key else None
        self.warmup_s: float = float(get("llm_warmup", 0.0) or 0.0)
        self.warmup_requests: int = int(get("llm_warmup_requests", 0) or 0)
        self.token_events: bool = bool(get("llm_token_events", False))
        self.timestamps_mode: str = get("llm_timestamps", "auto") or "auto"
        # None: each user class's own network_timeout applies (LLMUser: 600 s)
        self.timeout: float | None = get("llm_timeout")
        self.output_tokenizer = _output_tokenizer(get("llm_tokenizer"))
        self.continuous_usage: bool = bool(get("llm_continuous_usage", False))
        self.slos = check_slos(split_slos(get("llm_slo")))
        self.collector.good = goodput_predicate(self.slos)
        self.summary_path: str | None = get("llm_summary")
        records = get("llm_records")
        if records != self._records_path:
            self.close()
            self._records_path = records
            if records:
                os.makedirs(os.path.dirname(os.path.abspath(records)), exist_ok=True)
                # unbuffered append: each record is one write(2); a SIGKILL loses nothing written
                self._records = open(records, "ab", buffering=0)  # noqa: SIM115

    # -- used by users --------------------------------------------------------------------
    def install_client(self, client: Any, host: str | None) -> bool:
        """Per-user client setup: kernel receive stamps unless
        ``--llm-timestamps user`` (or unsupported: not Linux, HTTPS). Returns True when this
        user's responses will carry kernel stamps."""
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
        from locust_llm.workload.warmup import in_warmup

        if self.first_start is None:
            self.first_start = t_start
        ordinal = self.started
        self.started += 1
        return in_warmup(
            t_start,
            ordinal,
            start=self.first_start,
            seconds=self.warmup_s,
            requests=self.warmup_requests,
        )

    def default_prompt(self) -> str:
        """A synthetic prompt of ``--llm-prompt-tokens`` words (one word ≈ one token)."""
        from locust_llm.workload.synthetic import fit_text

        text, _ = fit_text(self._rng, self.prompt_tokens)
        return text

    def resolve_model(self, host: str | None) -> str:
        if self.model:
            return self.model
        import gevent.lock

        if self._models_lock is None:
            self._models_lock = gevent.lock.Semaphore()
        with self._models_lock:
            if not self.model:
                try:
                    self.model = fetch_first_model(host, self.auth_header, self.timeout or 60.0)
                except RuntimeError as e:
                    raise RuntimeError(redact(str(e), self.api_key)) from None
        return self.model

    def finish(self, res: LLMResult) -> None:
        """Account one finished request: stats rows, collector, record, event."""
        self.collector.request_finished(time.time())
        if res.t_start < self.reset_at:
            res.warmup = True  # in flight across a stats reset: it belongs to neither side
        env = self.environment
        if not res.warmup and res.ok:
            stats = env.stats
            # on Locust's grid, so min/max/avg and its percentiles agree within a row
            if res.ttft is not None:
                stats.get("TTFT", "LLM").log(on_locust_grid(res.ttft), 0)
            tpot = res.tpot
            if tpot is not None:
                stats.get("TPOT", "LLM").log(on_locust_grid(tpot), 0)
            if res.itl:
                log_many(stats.get("ITL", "LLM"), list(map(on_locust_grid, res.exact_itl())))
        self.collector.add(res)
        if self._records is not None:
            line = res.to_json_line()
            f = self._records
            try:
                start = os.lseek(f.fileno(), 0, os.SEEK_END)
                if f.write(line) != len(line):  # short write: the disk filled up mid-line
                    os.ftruncate(f.fileno(), start)  # no torn last line: every line parses
                    raise OSError(errno.ENOSPC, "short write (disk full?)")
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
    def summary(self) -> dict[str, Any]:
        import locust

        env = self.environment
        meta = {
            "model": self.model,
            "host": _without_credentials(env.host),
            "peak_users": self.peak_users,
            "timestamps": self.timestamps_mode,
            "locust_version": locust.__version__,
            "locust_llm_version": __version__,
            "warmup_s": self.warmup_s,
            "warmup_requests": self.warmup_requests,
            "slo": [s.expr for s in self.slos],
        }
        s = summarize(self.collector, meta=meta)
        s["meta"].update(self.load(s["total_requests"], s.get("started_at")))
        cpu = self.cpu_seconds()
        s["client_cpu_s"] = cpu
        s["client_processes"] = max(len(self.worker_cpu), 1)
        s["client_cpu_share"] = (
            cpu / (s["duration"] * s["client_processes"]) if s["duration"] > 0 else None
        )
        from locust_llm.metrics.health import judge

        v = judge(s["client_bound"], s["client_bound_reason"], s["client_cpu_share"])
        s["client_bound"], s["client_bound_reason"] = v.client_bound, v.reason
        s["client_read_delay"] = v.delayed
        phases = getattr(env, "llm_phases", None)  # set by stepped shapes (locustfiles/sweep.py)
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
        s["slo"] = evaluate(self.slos, s)
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

        start = max(self.spawned_at or 0.0, (self.first_start or 0.0) + self.warmup_s)
        end = self.stopped_at - 1.0 if self.stopped_at else None
        return detect(rows, start_after=start + 1.0 if start else None, end_before=end).to_json()

    def load(self, num_requests: int, started_at: float | None = None) -> dict[str, Any]:
        """What load this run offered, in ``vllm bench serve``'s terms."""
        from locust_llm.load_meta import describe_load

        env = self.environment
        opts = env.parsed_options
        users = self.peak_users or int(getattr(opts, "num_users", None) or 1)
        return describe_load(
            opts,
            open_loop=bool(getattr(env, "llm_open_loop", False)),
            users=users,
            num_requests=num_requests,
            model=self.model,
            started_at=started_at,
        )

    def cpu_seconds(self) -> float:
        """CPU used by the load generator since the test started: this process's, or on a
        master the sum of what its workers reported (the master itself only merges)."""
        if self.worker_cpu:
            return sum(self.worker_cpu.values())
        return time.process_time() - self.cpu_start

    def close(self) -> None:
        if self._records is not None:
            self._records.close()
            self._records = None


def _without_credentials(url: str | None) -> str | None:
    """``http://user:pass@host`` -> ``http://host``: the summary is shared, keys are not."""
    if not url or "@" not in url:
        return url
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _valid_header_value(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not any(c in value for c in "\r\n\0")


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` masked: exception texts may quote request headers."""
    if secret and secret in text:
        return text.replace(secret, "***")
    return text


def log_many(entry: Any, values: list[float]) -> None:
    """``entry.log(v, 0)`` for every value, in bulk: one ITL sample per token made Locust's
    per-call bookkeeping (clock read, cache check) ~15 % of the client's CPU per token.
    Falls back to per-sample ``log`` if Locust's internals are not the ones this was written
    against (2.4x: ``bucket_response_time`` and these ``StatsEntry`` fields)."""
    bucket = getattr(locust.stats, "bucket_response_time", None)
    if bucket is None or not hasattr(entry, "response_times") or len(values) < 2:
        for v in values:
            entry.log(v, 0)
        return
    entry.log(values[0], 0)  # time bookkeeping and cache rotation, once
    rest = values[1:]
    n = len(rest)
    entry.num_requests += n
    entry.num_reqs_per_sec[int(entry.last_request_timestamp)] += n
    entry.total_response_time += sum(rest)
    entry.min_response_time = min(entry.min_response_time, min(rest))
    entry.max_response_time = max(entry.max_response_time, max(rest))
    rt = entry.response_times
    for k in map(bucket, rest):
        rt[k] += 1


def fetch_first_model(host: str | None, auth_header: str | None, timeout: float) -> str:
    """GET /v1/models and take the first id (what vLLM serves); a clear error otherwise."""
    from geventhttpclient import URL, HTTPClient

    if not host:
        raise RuntimeError("no host to ask for models: pass --host or --llm-model")
    url = URL(host.rstrip("/") + "/v1/models")
    headers = {"Authorization": auth_header} if auth_header else {}
    try:
        client = HTTPClient.from_url(url, connection_timeout=10, network_timeout=timeout)
        try:
            resp = client.get(url.request_uri, headers=headers)
            body = resp.read()
            status = resp.status_code
        finally:
            client.close()
    except Exception as e:
        raise RuntimeError(f"cannot list models at {url}: {type(e).__name__}: {e}") from e
    if status != 200:
        from locust_llm.protocol import error_message

        raise RuntimeError(f"GET {url} failed: {error_message(status, body)}")
    try:
        ids = [m["id"] for m in orjson.loads(body)["data"]]
    except Exception as e:
        raise RuntimeError(f"GET {url}: not an OpenAI model list; pass --llm-model") from e
    if not ids:
        raise RuntimeError(f"GET {url}: the server lists no models; pass --llm-model")
    return ids[0]


def runtime(environment: Any) -> LLMRuntime:
    """The environment's runtime, created on first use (also for Environments built in tests)."""
    rt = getattr(environment, "llm", None)
    if rt is None:
        rt = LLMRuntime(environment)
        environment.llm = rt
    return rt


# -- listeners ------------------------------------------------------------------------------
_ENV_REF: dict[str, Any] = {}


def _current_env() -> Any:
    """This process's Environment: some Locust events don't pass it to their listeners."""
    return _ENV_REF.get("env")


@events.init.add_listener
def _remember_env(environment: Any, **_kw: Any) -> None:
    _ENV_REF["env"] = environment


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    opts = environment.parsed_options
    if opts is None:
        return
    try:
        check_slos(split_slos(opts.llm_slo))
    except SLOError as e:
        sys.stderr.write(f"locust-llm: --llm-slo: {e}\n")
        sys.exit(2)
    check_only = bool(os.environ.get(CHECK_ONLY_ENV))
    records = getattr(opts, "llm_records", None)
    if records and not check_only and not isinstance(environment.runner, WorkerRunner):
        # a new run replaces the file (as --csv does); workers append to what the master
        # (or the local runner) truncated here, before any test has started
        if not getattr(opts, "llm_records_append", False):
            _truncate(records)
    key = (getattr(opts, "llm_api_key", "") or "").strip()
    if key and not _valid_header_value(key):
        # a key with a line break or non-Latin-1 text cannot go into an HTTP header: every
        # request would fail inside the HTTP client, with the key in the exception text
        sys.stderr.write(
            "locust-llm: the API key (--llm-api-key / OPENAI_API_KEY) contains a line break or "
            "characters that cannot be sent in an HTTP header; check how it was set\n"
        )
        sys.exit(2)
    from locust_llm.preflight import PreflightError, check_options

    try:
        check_options(opts)  # files and option values: no user may spawn on a typo
    except PreflightError as e:
        _fail(str(e), skippable=False)  # --llm-skip-preflight skips the server check only
    if check_only:
        sys.exit(0)
    rt = runtime(environment)
    if not isinstance(environment.runner, WorkerRunner):
        from locust_llm import embedded

        embedded.start_backend(environment, rt)
        if getattr(opts, "headless", False) or getattr(opts, "autostart", False):
            # the web UI runs it when START is pressed: the host may be typed into the form
            try:
                preflight(environment, rt)
            except PreflightError as e:
                embedded.stop_backend(rt)
                _fail(str(e))
        if getattr(opts, "llm_gpu_telemetry", False) or getattr(opts, "llm_backend", "") == "gpu":
            from locust_llm.telemetry.launch import Sampler

            summary = getattr(opts, "llm_summary", None)
            rt.gpu_sampler = Sampler.start(
                os.path.dirname(os.path.abspath(summary)) if summary else None
            )


def _fail(message: str, skippable: bool = True) -> None:
    from locust_llm.preflight import SKIP_HINT

    hint = f"; {SKIP_HINT}" if skippable and "pre-flight" not in message else ""
    sys.stderr.write(f"locust-llm: pre-flight failed: {message}{hint}\n")
    sys.exit(1)


def llm_path(environment: Any) -> str | None:
    """The endpoint the test's LLM users stream from (the first such user class)."""
    for cls in getattr(environment, "user_classes", None) or []:
        path = getattr(cls, "path", None)
        if isinstance(path, str) and path.startswith("/v1/") and hasattr(cls, "stream_request"):
            return path
    return None


def preflight(environment: Any, rt: LLMRuntime) -> None:
    """Server reachable, model(s) served, one streamed request (skipped by
    ``--llm-skip-preflight`` or when no LLM user is in the test)."""
    from locust_llm.preflight import PreflightError, check_server

    opts = environment.parsed_options
    if opts is not None and getattr(opts, "llm_skip_preflight", False):
        return
    path = llm_path(environment)
    if path is None:
        return
    mix = []
    spec = getattr(opts, "llm_model_mix", None)
    if spec:
        from locust_llm.workload.mix import parse_model_mix

        mix = parse_model_mix(spec).models
    rt.configure()  # the web form may have changed --llm-model
    try:
        found = check_server(
            environment.host,
            path=path,
            model=rt.model,
            auth_header=rt.auth_header,
            timeout=min(rt.timeout or 60.0, 60.0),
            models_wanted=mix,
        )
    except PreflightError as e:
        raise PreflightError(redact(str(e), rt.api_key)) from None
    if rt.model is None:
        rt.model = found.model
    log.info("locust-llm: pre-flight passed: %s serves %s", environment.host, found.model)


def _truncate(path: str) -> None:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb"):
            pass
    except OSError as e:
        sys.stderr.write(f"locust-llm: cannot write --llm-records {path}: {e}\n")
        sys.exit(1)


@events.report_to_master.add_listener
def _on_report_to_master(client_id: str, data: dict, **_kw: Any) -> None:
    env = _current_env()
    if env is not None:
        rt = runtime(env)
        data["llm"] = rt.collector.take_delta()
        data["llm_cpu"] = time.process_time() - rt.cpu_start


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict, **_kw: Any) -> None:
    env = _current_env()
    if env is None:
        return
    rt = runtime(env)
    if data.get("llm"):
        rt.collector.merge_delta(data["llm"])
    if "llm_cpu" in data:
        rt.worker_cpu[client_id] = data["llm_cpu"]


@events.test_start.add_listener
def _on_test_start(environment: Any, **_kw: Any) -> None:
    # a new test (also the web UI's "New test" after a stop): Locust starts its stats afresh
    # without firing reset_stats, so the LLM metrics start afresh here too
    rt = runtime(environment)
    rt.configure()
    rt.collector.reset()
    rt.first_start = None
    rt.started = 0
    rt.worker_cpu.clear()
    rt.peak_users = 0
    rt.spawned_at = rt.stopped_at = None
    rt.cpu_start = time.process_time()
    if not isinstance(environment.runner, WorkerRunner) and not getattr(
        environment, "shape_class", None
    ):
        from locust_llm.load_meta import traffic_lines

        out = logging.getLogger("locust.stats_logger")
        for line in traffic_lines(rt.load(0)):  # as vllm bench serve prints before sending
            out.info(line)


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_kw: Any) -> None:
    rt = runtime(environment)
    if rt.stopped_at is None:
        rt.stopped_at = time.time()


@events.reset_stats.add_listener
def _on_reset_stats(**_kw: Any) -> None:
    env = _current_env()
    if env is not None:
        rt = runtime(env)
        rt.collector.reset()
        rt.first_start = None
        rt.started = 0
        rt.reset_at = time.time()


@events.spawning_complete.add_listener
def _on_spawning_complete(user_count: int, **_kw: Any) -> None:
    env = _current_env()
    if env is None:
        return
    rt = runtime(env)
    rt.peak_users = max(rt.peak_users, user_count)
    rt.spawned_at = time.time()
    # --reset-stats resets Locust's stats here without firing reset_stats: follow it
    if env.parsed_options is not None and getattr(env.parsed_options, "reset_stats", False):
        rt.collector.reset()
        rt.first_start = None
        rt.started = 0
        rt.reset_at = time.time()


@events.quitting.add_listener
def _on_quitting(environment: Any, **_kw: Any) -> None:
    rt = runtime(environment)
    runner = environment.runner
    if isinstance(runner, LocalRunner) and runner.state in (STATE_SPAWNING, STATE_RUNNING):
        # Ctrl-C / SIGTERM mid-run: Locust fires quitting before it stops the users. Stop them
        # first, so requests in flight are recorded (as aborted) in the summary and no user
        # is still talking to the backend this listener is about to stop.
        runner.stop()
    try:
        if rt.gpu_sampler is not None:
            rt.gpu_sampler.stop()
        if not isinstance(environment.runner, WorkerRunner):
            write_summary(environment, rt)
    finally:
        rt.close()
        from locust_llm import embedded

        embedded.stop_backend(rt)


def write_summary(environment: Any, rt: LLMRuntime) -> dict[str, Any]:
    s = rt.summary()
    out = logging.getLogger("locust.stats_logger")  # Locust's plain console logger
    for line in format_summary(s):
        out.info(line)
    for line in format_steps(s.get("steps") or []):
        out.info(line)
    rows = s["slo"]
    if rows:
        for line in format_rows(rows):
            out.info(f"SLO {line}")
        if not all(r["passed"] for r in rows):
            environment.process_exit_code = SLO_EXIT_CODE
    if s.get("client_bound"):
        log.warning("locust-llm: %s", s["client_bound_reason"])
    elif s.get("client_read_delay"):
        log.warning("locust-llm: %s", s["client_read_delay"])
    sat = s.get("saturation") or {}
    if sat.get("detected"):
        log.warning(
            "locust-llm: SATURATED %.0fs into the measured load: %s", sat["at_s"], sat["reason"]
        )
    ratio = s.get("output_tokens_vs_requested")
    if ratio is not None and ratio < SHORT_OUTPUT_RATIO:
        log.warning(
            "locust-llm: requests generated %.0f%% of the max_tokens they asked for: output "
            "lengths follow the model's EOS, so throughput and TPOT are not comparable across "
            "runs. For fixed-length outputs (as vllm bench serve --ignore-eos) pass "
            "--llm-ignore-eos%s",
            ratio * 100,
            "; it is set, so this server ignores ignore_eos" if rt.ignore_eos else "",
        )
    # requests cut off when the run ends (error kind aborted/cancelled) never reach Locust's
    # failures, so its exit code already leaves them out; nothing is judged by message text
    if rt.records_failed and not environment.process_exit_code:
        environment.process_exit_code = 1  # an artifact the user asked for is incomplete
    if rt.summary_path:
        path = rt.summary_path
        tmp = f"{path}.tmp"
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(orjson.dumps(s, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
            os.replace(tmp, path)
            log.info("LLM summary written to %s", path)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            log.error("cannot write --llm-summary %s (%s); the summary is printed above", path, e)
            if not environment.process_exit_code:
                environment.process_exit_code = 1
    return s


def format_summary(s: dict[str, Any]) -> list[str]:
    """The block ``vllm bench serve`` prints, so numbers can be compared line by line."""
    w = 50
    lines = ["{s:{c}^{n}}".format(s=" LLM Benchmark Result (locust-llm) ", n=w, c="=")]

    def row(label: str, value: Any, fmt: str = "{:<10.2f}") -> None:
        # "{:<40} {:<10}" as vllm bench serve prints, so lines diff cleanly against its output
        lines.append(f"{label:<40} " + (fmt.format(value) if value is not None else "n/a"))

    row("Successful requests:", s["completed"], "{:<10}")
    row("Failed requests:", s["failed"], "{:<10}")
    row("Aborted requests:", s["aborted"], "{:<10}")
    if s.get("no_data_reason"):  # the zeros below measured nothing: say why
        lines.append(f"NO DATA: {s['no_data_reason']}")
    if s.get("midstream_errors"):
        row("Completed with a mid-stream error:", s["midstream_errors"], "{:<10}")
    load = s.get("meta") or {}
    if load.get("max_concurrency") is not None:
        row("Maximum request concurrency:", load["max_concurrency"], "{:<10}")
    if isinstance(load.get("request_rate"), (int, float)):
        row("Request rate configured (RPS):", load["request_rate"])
    row("Benchmark duration (s):", s["duration"])
    row("Total input tokens:", s["total_input_tokens"], "{:<10}")
    row("Total generated tokens:", s["total_output_tokens"], "{:<10}")
    row("Request throughput (req/s):", s["request_throughput"])
    if s.get("request_goodput") is not None:
        row("Request goodput (req/s):", s["request_goodput"])
    row("Output token throughput (tok/s):", s["output_throughput"])
    row("Peak output token throughput (tok/s):", s["max_output_tokens_per_s"])
    row("Total token throughput (tok/s):", s["total_token_throughput"])
    for key, title in (
        ("ttft", "Time to First Token"),
        ("tpot", "Time per Output Token (excl. 1st token)"),
        ("itl", "Inter-token Latency"),
        ("e2el", "End-to-end Latency"),
    ):
        lines.append("{s:{c}^{n}}".format(s=title, n=w, c="-"))
        row(f"Mean {key.upper()} (ms):", s[f"mean_{key}_ms"])
        row(f"Median {key.upper()} (ms):", s[f"median_{key}_ms"])
        row(f"P99 {key.upper()} (ms):", s[f"p99_{key}_ms"])
    lines.append("=" * w)
    return lines


def format_steps(steps: list[dict[str, Any]]) -> list[str]:
    """One line per step of a stepped sweep, under the summary block: the curve the run
    measured (each step's own window, so its throughput is that user count's)."""
    if not steps:
        return []

    def num(v: Any, fmt: str) -> str:
        return fmt.format(v) if isinstance(v, (int, float)) else "n/a"

    lines = [
        "{s:{c}^{n}}".format(s=" Sweep steps (measured windows) ", n=50, c="-"),
        f"{'users':>6}{'req/s':>9}{'out tok/s':>11}{'TTFT p50':>10}"
        f"{'TTFT p99':>10}{'ITL p50':>9}{'failed':>8}   (latencies in ms)",
    ]
    for st in steps:
        lines.append(
            f"{num(st.get('users'), '{:>6}')}"
            f"{num(st.get('request_throughput'), '{:>9.2f}')}"
            f"{num(st.get('output_throughput'), '{:>11.1f}')}"
            f"{num(st.get('median_ttft_ms'), '{:>10.1f}')}"
            f"{num(st.get('p99_ttft_ms'), '{:>10.1f}')}"
            f"{num(st.get('median_itl_ms'), '{:>9.2f}')}"
            f"{num(st.get('failed'), '{:>8}')}"
        )
    lines.append("=" * 50)
    return lines
