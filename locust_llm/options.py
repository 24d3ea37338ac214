"""Every ``--llm-*`` option: registered on Locust's parser here, read back as one typed object.

Each default is stated once, in :class:`LLMOptions`; the parser takes its defaults from
there, and code reads ``LLMOptions.of(parsed_options)`` instead of ``getattr`` with a
default of its own. Only options a new test started from the web form can still change are
in the form; the rest are read once at start.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from typing import Any

from locust_llm.backends.names import DEFAULT_LB, LB_METHODS, LOCUST_BACKENDS
from locust_llm.workload.arrivals import PROCESSES
from locust_llm.workload.distributions import SpecError, parse_length, parse_seconds
from locust_llm.workload.trace import FORMATS as TRACE_FORMATS
from locust_llm.workload.trace import MOONCAKE_BLOCK_TOKENS
from locust_llm.workload.trace_schedule import DEFAULT_LAG_P99_S

__all__ = ["LLMOptions", "Verbatim", "add_arguments", "TIMESTAMP_MODES"]

TIMESTAMP_MODES = ("auto", "kernel", "user")


@dataclass
class LLMOptions:
    """The ``--llm-*`` options of one run (``llm_`` dropped from the names)."""

    # requests
    model: str | None = None
    max_tokens: int = 128
    prompt_tokens: int = 128
    ignore_eos: bool = False
    api_key: str = field(default_factory=lambda: os.environ.get("OPENAI_API_KEY", ""))
    timeout: float | None = None  # None: each user class's own network_timeout
    tokenizer: str | None = None
    continuous_usage: bool = False
    # client behaviour: hang up on a share of requests; images in chat requests
    cancel_rate: str | None = None  # checked by the pre-flight (one line), not by argparse
    cancel_after: str | None = None
    images: str | None = None
    image_size: str = "512"
    # outputs and judgement
    records: str | None = None
    records_append: bool = False
    summary: str | None = None
    slo: list[str] | None = None  # not []: Locust's form would convert typed text with int()
    warmup: float = 0.0
    warmup_requests: int = 0
    token_events: bool = False
    timestamps: str = "auto"
    gpu_telemetry: bool = False
    metrics_url: list[str] | None = None
    skip_preflight: bool = False
    # backend
    backend: str = "auto"
    tp: int = 1
    replicas: int | None = None
    lb: str = DEFAULT_LB
    vllm_cmd: str | None = None
    serve_args: str = ""
    run_dir: str | None = None
    # workload (locustfiles/rate.py, multiturn.py, sweep.py)
    rate: float = 0.0
    arrival: str = "poisson"
    burstiness: float = 1.0
    max_inflight: int = 0
    seed: int = 0
    prompt_dist: str | None = None
    output_dist: str | None = None
    dataset: str | None = None
    dataset_format: str = "auto"
    prefix_groups: int = 0
    prefix_tokens: int = 0
    model_mix: str | None = None
    turns: str = "3"
    think_time: str = "0"
    sweep_users: str = "1,2,4,8"
    sweep_hold: float = 30.0
    sweep_warmup: float = 0.0
    # pooling (locustfiles/embeddings.py, rerank.py)
    batch_size: int = 8
    # trace replay (locustfiles/trace.py)
    trace: str | None = None
    trace_format: str = "auto"
    trace_speed: float = 1.0
    trace_loop: bool = False
    trace_block_tokens: int = MOONCAKE_BLOCK_TOKENS
    trace_max_lag: float = DEFAULT_LAG_P99_S * 1000.0  # ms

    @classmethod
    def of(cls, parsed: Any) -> LLMOptions:
        """From Locust's parsed options (``None``, or a namespace missing some: defaults).
        A value of ``None`` where the default is not falls back to the default, as the web
        form sends empty fields."""
        out = cls()
        if parsed is None:
            return out
        for f in fields(cls):
            value = getattr(parsed, "llm_" + f.name, None)
            if value is not None:
                setattr(out, f.name, value)
        out.api_key = (out.api_key or "").strip()
        return out


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _spec(parse: Any) -> Any:
    def check(text: str) -> str:
        try:
            parse(text)
        except SpecError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return text

    return check


class Verbatim(str):
    """Help text shown as written both by ``--help`` (argparse %-formats it, so ``1%`` would
    need ``1%%``) and by the web form (which shows the raw text, so ``%%`` would show)."""

    def __mod__(self, _params: Any) -> str:
        return str(self)


def add_arguments(parser: Any) -> None:
    """Register every ``--llm-*`` option on ``parser`` (once: the ``--help`` hook and the
    plugin may both call this)."""
    if "--llm-model" in getattr(parser, "_option_string_actions", {}):
        return
    d = LLMOptions()

    def a(flag: str, include_in_web_ui: bool = False, **kw: Any) -> Any:
        name = flag[len("--llm-") :].replace("-", "_")
        if kw.get("action") == "store_true":
            kw["default"] = False
        else:
            kw.setdefault("default", getattr(d, name))
        return parser.add_argument(flag, include_in_web_ui=include_in_web_ui, **kw)

    web = {"include_in_web_ui": True}
    a(
        "--llm-model",
        **web,
        help="Model to request (default: the first id from the server's /v1/models)",
    )
    a(
        "--llm-max-tokens",
        type=_positive_int,
        **web,
        help=f"max_tokens per request (default {d.max_tokens})",
    )
    a(
        "--llm-prompt-tokens",
        type=_positive_int,
        **web,
        help=f"Length of the default synthetic prompt, in tokens (default {d.prompt_tokens})",
    )
    a(
        "--llm-ignore-eos",
        action="store_true",
        **web,
        help="Send ignore_eos so every request generates exactly max_tokens (vLLM extension)",
    )
    # not in the web UI: Locust puts a secret option's value in the page source (only the
    # input box is masked), so anyone who can open the UI could read the key
    a(
        "--llm-api-key",
        help="Bearer API key (default: $OPENAI_API_KEY); never logged, not shown in the web UI",
    )
    a(
        "--llm-records",
        help="Write one JSON line per finished request to PATH (replaced at each run, as "
        "--csv is; see --llm-records-append)",
    )
    a(
        "--llm-records-append",
        action="store_true",
        help="Append to an existing --llm-records file instead of replacing it",
    )
    a("--llm-summary", help="Write the LLM summary JSON (vLLM field names) to PATH at quit")
    a(
        "--llm-slo",
        action="append",
        **web,
        help=Verbatim(
            "SLO checked at quit, repeatable (comma-separated in the web form): "
            "ttft_p95<=800ms, itl_p99<=60ms, error_rate<=1%, output_throughput>=500. "
            "Any FAIL makes locust exit with code 3"
        ),
    )
    a(
        "--llm-warmup",
        type=float,
        **web,
        help="Seconds after the first request whose requests are excluded from LLM metrics",
    )
    a(
        "--llm-warmup-requests",
        type=int,
        **web,
        help="Number of first requests (per Locust process) excluded from LLM metrics",
    )
    a(
        "--llm-timeout",
        type=float,
        help="Longest silence (s) tolerated while waiting for the next bytes of a stream "
        "(default: the user class's network_timeout, 600 s for LLM users)",
    )
    a(
        "--llm-token-events",
        action="store_true",
        help="Fire the llm_token event for every token chunk (costs CPU per token)",
    )
    a(
        "--llm-backend",
        choices=LOCUST_BACKENDS,
        help="What to start before the test: auto = the built-in emulator when no --host is "
        "given; emulator/cpu/gpu = replicas (behind nginx if several); external/none = nothing",
    )
    a("--llm-tp", type=_positive_int, help="Tensor-parallel size per replica (gpu backend)")
    a("--llm-replicas", type=_positive_int, help="Number of replicas (default: from the plan)")
    a("--llm-lb", choices=LB_METHODS, help="nginx balancing policy")
    a("--llm-vllm-cmd", help="Executable replacing 'vllm serve' (e.g. the emulator)")
    a(
        "--llm-serve-args",
        help='Extra arguments for every replica, e.g. "--max-num-seqs 32 --emu-itl-ms 20"',
    )
    a("--llm-run-dir", help="Folder for backend logs (default: a temporary folder)")
    a(
        "--llm-timestamps",
        choices=TIMESTAMP_MODES,
        help="Token arrival stamps: kernel receive time (Linux, plain HTTP) or user space",
    )
    a(
        "--llm-tokenizer",
        help="Local tokenizer.json (or its folder): exact prompt lengths, and output "
        "tokens when the server sends no usage",
    )
    a(
        "--llm-continuous-usage",
        action="store_true",
        help="Ask for usage in every chunk (vLLM's stream_options.continuous_usage_stats): "
        "tokens per chunk and a token-weighted ITL",
    )
    a(
        "--llm-gpu-telemetry",
        action="store_true",
        help="Sample NVML per GPU every 0.2 s in a separate process (on with --llm-backend gpu): "
        "utilization, power, energy per output token in the summary",
    )
    a(
        "--llm-metrics-url",
        action="append",
        help="Server /metrics URL(s) to scrape for the LLM tab (default: the started backend's)",
    )
    a(
        "--llm-skip-preflight",
        action="store_true",
        help="Start the users without the pre-flight check (server reachable, model served, "
        "one streamed request): to measure a server that fails",
    )
    a(
        "--llm-cancel-rate",
        help="Fraction of requests (0..1, drawn with --llm-seed) the client cancels by closing "
        "the connection, as a client going away does; see --llm-cancel-after",
    )
    a(
        "--llm-cancel-after",
        help='When to cancel: after N output tokens ("32") or a time after sending ("500ms", "2s")',
    )
    a(
        "--llm-images",
        help="Chat: generated PNG images per request (a count or a distribution, e.g. "
        "uniform:1:3), sent as image_url data: parts; vision models only",
    )
    a(
        "--llm-image-size",
        help=f"Side of each square image in pixels (a distribution; default {d.image_size})",
    )
    _add_workload_arguments(a, web)
    _add_trace_arguments(a)


def _add_workload_arguments(a: Any, web: dict[str, Any]) -> None:
    """The workload locustfiles' options (``rate.py``, ``multiturn.py``, ``sweep.py``)."""
    a("--llm-rate", type=float, **web, help="Open loop: total requests/s (rate.py)")
    a("--llm-arrival", choices=PROCESSES, **web, help="Open-loop arrival process")
    a(
        "--llm-burstiness",
        type=float,
        **web,
        help="Gamma arrivals: shape (1 = Poisson, <1 burstier; CV = 1/sqrt(b))",
    )
    a(
        "--llm-max-inflight",
        type=int,
        **web,
        help="Open loop: cap on requests in flight over the whole run (0: the number of users)",
    )
    a("--llm-seed", type=int, help="Seed for prompts, lengths, arrivals and model choice")
    a(
        "--llm-prompt-dist",
        type=_spec(parse_length),
        **web,
        help="Prompt length distribution, e.g. uniform:64:256, normal:128:32, "
        "lognormal:mean=128,sigma=0.5",
    )
    a(
        "--llm-output-dist",
        type=_spec(parse_length),
        **web,
        help="Output length (max_tokens) distribution; default --llm-max-tokens",
    )
    a(
        "--llm-dataset",
        help="Local dataset file: ShareGPT .json, .jsonl (prompt/messages), or text lines",
    )
    a("--llm-dataset-format", help="auto | sharegpt | jsonl | text")
    a("--llm-prefix-groups", type=int, help="Shared-prefix groups (0: none)")
    a("--llm-prefix-tokens", type=int, help="Tokens per shared prefix")
    a("--llm-model-mix", help="Weighted models per request, e.g. llama=2,qwen=1")
    a("--llm-turns", type=_spec(parse_length), help="Multi-turn: turns per synthetic conversation")
    a("--llm-think-time", type=_spec(parse_seconds), help="Multi-turn: seconds between turns")
    a("--llm-sweep-users", help="Sweep: users per step (sweep.py)")
    a("--llm-sweep-hold", type=float, help="Sweep: measured seconds per step")
    a("--llm-sweep-warmup", type=float, help="Sweep: warm-up seconds per step (excluded)")
    a(
        "--llm-batch-size",
        type=_positive_int,
        **web,
        help=f"Embeddings: inputs per request; rerank: documents per query "
        f"(embeddings.py, rerank.py; default {LLMOptions.batch_size})",
    )


def _add_trace_arguments(a: Any) -> None:
    """Trace replay (``locustfiles/trace.py``). The format and the file are checked by the
    pre-flight, so a bad value stops the run with the file, line and field."""
    d = LLMOptions()
    a("--llm-trace", help="Trace replay: the trace file (Mooncake JSONL, Azure CSV or JSONL)")
    a(
        "--llm-trace-format",
        help=f"Trace format: auto (from the extension, then the first record) | "
        f"{' | '.join(TRACE_FORMATS)}",
    )
    a(
        "--llm-trace-speed",
        type=float,
        help="Trace replay speed factor: 2 sends the trace twice as fast (default 1)",
    )
    a(
        "--llm-trace-loop",
        action="store_true",
        help="Start the trace again after its last record (bound the run with -t)",
    )
    a(
        "--llm-trace-block-tokens",
        type=_positive_int,
        help=f"Tokens per Mooncake hash_ids block (the trace's: {d.trace_block_tokens}); "
        "smaller scales each input_length by this/512, keeping the shared blocks: for "
        "models with a short context",
    )
    a(
        "--llm-trace-max-lag",
        type=float,
        help=f"p99 schedule lag (ms, sent - scheduled) above which the replay is flagged as "
        f"not the trace's load (default {d.trace_max_lag:g})",
    )
