"""Locust glue for the workload: ``--llm-*`` workload options and per-process helpers.

Why here and not in ``plugin.py``: these options only matter to the workload locustfiles
(``locustfiles/rate.py``, ``multiturn.py``, ``sweep.py``); a locustfile that imports this
module gets them. Everything else in ``locust_llm.workload`` stays Locust-free; this is
the one module that imports Locust. Names avoid the plugin's (``--llm-model``,
``--llm-max-tokens``, ``--llm-prompt-tokens``, ``--llm-warmup``, ...).

Open-loop split across processes: the master sends every worker a ``llm_rate_split``
message at test start with its index, the worker count and a shared start time (epoch,
one second ahead), so the K processes draw disjoint interleaved slices of one arrival
sequence at total rate R (see ``arrivals.py``). Without a master: index 0 of 1.
"""

from __future__ import annotations

import math
import time
from typing import Any

from locust import events
from locust.runners import MasterRunner, WorkerRunner

from .arrivals import PROCESSES
from .conversation import ConversationSource
from .datasets import load_dataset
from .distributions import SpecError, parse_length, parse_seconds
from .mix import parse_model_mix
from .synthetic import SharedPrefixes, SyntheticPrompts
from .tokens import load_tokenizer

__all__ = [
    "add_workload_arguments",
    "split_info",
    "prompt_source",
    "conversation_source",
    "model_mix",
]

SPLIT_MESSAGE = "llm_rate_split"


def _spec(parse):
    import argparse

    def check(text: str) -> str:
        try:
            parse(text)
        except SpecError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return text

    return check


def add_workload_arguments(parser: Any) -> None:
    """The workload options; only those a new test from the web form can change are in it
    (the rest, such as the dataset, are read once when the locustfile starts)."""
    if "--llm-rate" in getattr(parser, "_option_string_actions", {}):
        return  # already on this parser (the --help hook, then the locustfile)

    def a(*args: Any, include_in_web_ui: bool = False, **kw: Any) -> Any:
        return parser.add_argument(*args, include_in_web_ui=include_in_web_ui, **kw)

    a(
        "--llm-rate",
        type=float,
        default=0.0,
        include_in_web_ui=True,
        help="Open loop: total requests/s (rate.py)",
    )
    a(
        "--llm-arrival",
        choices=PROCESSES,
        default="poisson",
        include_in_web_ui=True,
        help="Open-loop arrival process",
    )
    a(
        "--llm-burstiness",
        type=float,
        default=1.0,
        include_in_web_ui=True,
        help="Gamma arrivals: shape (1 = Poisson, <1 burstier; CV = 1/sqrt(b))",
    )
    a(
        "--llm-max-inflight",
        type=int,
        default=0,
        include_in_web_ui=True,
        help="Open loop: cap on requests in flight over the whole run (0: the number of users)",
    )
    a(
        "--llm-seed",
        type=int,
        default=0,
        help="Seed for prompts, lengths, arrivals and model choice",
    )
    a(
        "--llm-prompt-dist",
        type=_spec(parse_length),
        default=None,
        include_in_web_ui=True,
        help="Prompt length distribution, e.g. uniform:64:256, normal:128:32, lognormal:mean=128,sigma=0.5",
    )
    a(
        "--llm-output-dist",
        type=_spec(parse_length),
        default=None,
        include_in_web_ui=True,
        help="Output length (max_tokens) distribution; default --llm-max-tokens",
    )
    a(
        "--llm-dataset",
        default=None,
        help="Local dataset file: ShareGPT .json, .jsonl (prompt/messages), or text lines",
    )
    a("--llm-dataset-format", default="auto", help="auto | sharegpt | jsonl | text")
    if "--llm-tokenizer" not in getattr(parser, "_option_string_actions", {}):  # the plugin's
        a(
            "--llm-tokenizer",
            default=None,
            help="Local tokenizer.json (or folder) for exact prompt lengths",
        )
    a("--llm-prefix-groups", type=int, default=0, help="Shared-prefix groups (0: none)")
    a("--llm-prefix-tokens", type=int, default=0, help="Tokens per shared prefix")
    a("--llm-model-mix", default=None, help="Weighted models per request, e.g. llama=2,qwen=1")
    a(
        "--llm-turns",
        type=_spec(parse_length),
        default="3",
        help="Multi-turn: turns per synthetic conversation",
    )
    a(
        "--llm-think-time",
        type=_spec(parse_seconds),
        default="0",
        help="Multi-turn: seconds between turns",
    )
    a("--llm-sweep-users", default="1,2,4,8", help="Sweep: users per step (sweep.py)")
    a("--llm-sweep-hold", type=float, default=30.0, help="Sweep: measured seconds per step")
    a(
        "--llm-sweep-warmup",
        type=float,
        default=0.0,
        help="Sweep: warm-up seconds per step (excluded)",
    )


_REGISTERED = False


def register() -> None:
    """Add the options and the split message handlers once per process."""
    global _REGISTERED
    if _REGISTERED:
        return
    _REGISTERED = True
    events.init_command_line_parser.add_listener(
        lambda parser, **_kw: add_workload_arguments(parser)
    )
    events.init.add_listener(_on_init)
    events.test_start.add_listener(_on_test_start)
    from locust_llm.preflight import add_option_check

    add_option_check(check_workload_options)


_DATASETS: dict[tuple[str, str], Any] = {}


def _dataset(path: str, fmt: str):
    """Load a dataset once per process (the pre-flight loads it; the users reuse it)."""
    key = (path, fmt)
    if key not in _DATASETS:
        import logging

        ds = load_dataset(path, fmt)
        logging.getLogger("locust_llm").info(
            "locust-llm: dataset %s: %d entries loaded, %d skipped (no user turn)",
            path, len(ds.entries), ds.skipped,
        )  # fmt: skip
        _DATASETS[key] = ds
    return _DATASETS[key]


def check_workload_options(opts: Any) -> None:
    """The workload's files and specs, before any user spawns: a typo in a dataset path
    must stop the run with its one-line reason, not fail every request of it."""
    from locust_llm.preflight import PreflightError

    from .datasets import DatasetError

    if opts is None:
        return
    dataset = getattr(opts, "llm_dataset", None)
    try:
        if dataset:
            _dataset(dataset, getattr(opts, "llm_dataset_format", "auto") or "auto")
        load_tokenizer(getattr(opts, "llm_tokenizer", None))
        spec = getattr(opts, "llm_model_mix", None)
        if spec:
            parse_model_mix(spec)
    except DatasetError as e:
        raise PreflightError(f"--llm-dataset {e}") from None
    except (SpecError, ValueError, OSError) as e:
        raise PreflightError(str(e)) from None


# -- open-loop split --------------------------------------------------------------------
_SPLIT: dict[str, Any] = {"index": 0, "count": 1, "start": None}


def split_info() -> tuple[int, int, float | None]:
    """(index, count, shared start epoch or None) of this process's arrival slice."""
    return _SPLIT["index"], _SPLIT["count"], _SPLIT["start"]


def _on_init(environment: Any, **_kw: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):

        def on_split(msg: Any, **_k: Any) -> None:
            _SPLIT.update(msg.data)

        runner.register_message(SPLIT_MESSAGE, on_split)


def _on_test_start(environment: Any, **_kw: Any) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        ids = sorted(runner.clients, key=lambda cid: runner.get_worker_index(cid))
        start = time.time() + 1.0
        for i, cid in enumerate(ids):
            runner.send_message(
                SPLIT_MESSAGE, {"index": i, "count": len(ids), "start": start}, client_id=cid
            )
    elif not isinstance(runner, WorkerRunner):
        _SPLIT.update(index=0, count=1, start=None)


def inflight_share(environment: Any, users_here: int) -> int:
    """This process's share of ``--llm-max-inflight`` (0 -> its user count)."""
    cap = getattr(environment.parsed_options, "llm_max_inflight", 0) or 0
    if cap <= 0:
        return max(1, users_here)
    _, count, _ = split_info()
    return max(1, math.ceil(cap / count))


# -- prompt sources ---------------------------------------------------------------------
def _opt(environment: Any, name: str, default: Any = None) -> Any:
    opts = environment.parsed_options
    return getattr(opts, name, default) if opts is not None else default


def prompt_source(environment: Any):
    """An iterator of ``Prompt`` s from the options: dataset, else synthetic lengths."""
    seed = _opt(environment, "llm_seed", 0) or 0
    index, _, _ = split_info()
    tokenizer = load_tokenizer(_opt(environment, "llm_tokenizer"))
    dataset = _opt(environment, "llm_dataset")
    if dataset:
        ds = _dataset(dataset, _opt(environment, "llm_dataset_format", "auto") or "auto")
        return ds.prompts(seed=seed + index, tokenizer=tokenizer)
    groups = _opt(environment, "llm_prefix_groups", 0) or 0
    prefixes = None
    if groups > 0:
        tokens = _opt(environment, "llm_prefix_tokens", 0) or 0
        prefixes = SharedPrefixes(groups, max(1, tokens), seed=seed, tokenizer=tokenizer)
    prompt = (
        _opt(environment, "llm_prompt_dist") or _opt(environment, "llm_prompt_tokens", 128) or 128
    )
    output = _opt(environment, "llm_output_dist") or _opt(environment, "llm_max_tokens", 128)
    return iter(
        SyntheticPrompts(
            prompt, output, seed=seed * 1000 + index, tokenizer=tokenizer, prefixes=prefixes
        )
    )


def conversation_source(environment: Any) -> ConversationSource:
    seed = _opt(environment, "llm_seed", 0) or 0
    index, _, _ = split_info()
    dataset = _opt(environment, "llm_dataset")
    ds = (
        _dataset(dataset, _opt(environment, "llm_dataset_format", "auto") or "auto")
        if dataset
        else None
    )
    return ConversationSource(
        dataset=ds,
        turns=_opt(environment, "llm_turns", "3") or "3",
        prompt_tokens=_opt(environment, "llm_prompt_dist")
        or _opt(environment, "llm_prompt_tokens", 128)
        or 128,
        max_tokens=_opt(environment, "llm_output_dist") or _opt(environment, "llm_max_tokens", 128),
        think_time=_opt(environment, "llm_think_time", "0") or "0",
        seed=seed * 1000 + index,
        tokenizer=load_tokenizer(_opt(environment, "llm_tokenizer")),
    )


def model_mix(environment: Any):
    spec = _opt(environment, "llm_model_mix")
    return parse_model_mix(spec) if spec else None
