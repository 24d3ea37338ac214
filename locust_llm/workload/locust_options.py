"""Locust glue for the workload: per-process prompt sources and the open-loop split.

The workload's ``--llm-*`` options are registered with all the others by
``locust_llm.options``; :func:`register` makes sure a locustfile that imports only this module
gets them. Everything else in ``locust_llm.workload`` stays Locust-free; this is the one
module that imports Locust.

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

from locust_llm.options import LLMOptions

from .conversation import ConversationSource
from .datasets import load_dataset
from .distributions import SpecError
from .mix import parse_model_mix
from .synthetic import SharedPrefixes, SyntheticPrompts
from .tokens import load_tokenizer

__all__ = [
    "split_info",
    "prompt_source",
    "conversation_source",
    "model_mix",
]

SPLIT_MESSAGE = "llm_rate_split"


_REGISTERED = False


def register() -> None:
    """Add the options and the split message handlers once per process."""
    global _REGISTERED
    if _REGISTERED:
        return
    _REGISTERED = True
    from locust_llm.options import add_arguments

    events.init_command_line_parser.add_listener(lambda parser, **_kw: add_arguments(parser))
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
    o = LLMOptions.of(opts)
    try:
        if o.dataset:
            _dataset(o.dataset, o.dataset_format)
        load_tokenizer(o.tokenizer)
        if o.model_mix:
            parse_model_mix(o.model_mix)
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
    cap = LLMOptions.of(environment.parsed_options).max_inflight
    if cap <= 0:
        return max(1, users_here)
    _, count, _ = split_info()
    return max(1, math.ceil(cap / count))


# -- prompt sources ---------------------------------------------------------------------
def prompt_source(environment: Any):
    """An iterator of ``Prompt`` s from the options: dataset, else synthetic lengths."""
    o = LLMOptions.of(environment.parsed_options)
    index, _, _ = split_info()
    tokenizer = load_tokenizer(o.tokenizer)
    if o.dataset:
        ds = _dataset(o.dataset, o.dataset_format)
        return ds.prompts(seed=o.seed + index, tokenizer=tokenizer)
    prefixes = None
    if o.prefix_groups > 0:
        prefixes = SharedPrefixes(
            o.prefix_groups, max(1, o.prefix_tokens), seed=o.seed, tokenizer=tokenizer
        )
    return iter(
        SyntheticPrompts(
            o.prompt_dist or o.prompt_tokens,
            o.output_dist or o.max_tokens,
            seed=o.seed * 1000 + index,
            tokenizer=tokenizer,
            prefixes=prefixes,
        )
    )


def conversation_source(environment: Any) -> ConversationSource:
    o = LLMOptions.of(environment.parsed_options)
    index, _, _ = split_info()
    return ConversationSource(
        dataset=_dataset(o.dataset, o.dataset_format) if o.dataset else None,
        turns=o.turns,
        prompt_tokens=o.prompt_dist or o.prompt_tokens,
        max_tokens=o.output_dist or o.max_tokens,
        think_time=o.think_time,
        seed=o.seed * 1000 + index,
        tokenizer=load_tokenizer(o.tokenizer),
    )


def model_mix(environment: Any):
    spec = LLMOptions.of(environment.parsed_options).model_mix
    return parse_model_mix(spec) if spec else None
