"""What load produced a summary, in ``vllm bench serve``'s terms (pure, no Locust).

Why: a summary without its load cannot be compared with another one, nor with a
``vllm bench serve`` result, whose JSON carries ``date``, ``model_id``, ``num_prompts``,
``request_rate``, ``burstiness`` and ``max_concurrency``. The same names are used here, plus
what a Locust run adds (arrival process, users, dataset, prompt and output lengths).
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["describe_load", "traffic_lines"]


def describe_load(
    opts: Any,
    *,
    open_loop: bool,
    users: int,
    num_requests: int,
    model: str | None,
    started_at: float | None = None,
) -> dict[str, Any]:
    """``opts``: Locust's parsed options (``llm_*`` read with defaults). ``open_loop``: the
    locustfile sends at ``--llm-rate`` (rate.py); otherwise each user sends when its previous
    request ended (closed loop), which is vLLM's ``request_rate = inf`` with ``users`` as the
    concurrency cap."""

    def get(k: str, d: Any = None) -> Any:
        v = getattr(opts, k, d) if opts is not None else d
        return d if v is None else v

    rate = float(get("llm_rate", 0.0) or 0.0)
    cap = int(get("llm_max_inflight", 0) or 0)
    dataset = get("llm_dataset")
    t = started_at if started_at is not None else time.time()
    return {
        "date": time.strftime("%Y%m%d-%H%M%S", time.localtime(t)),
        "model_id": model,
        "num_prompts": num_requests,
        "request_rate": rate if open_loop and rate > 0 else "inf",
        "burstiness": float(get("llm_burstiness", 1.0)) if open_loop else None,
        "arrival": get("llm_arrival", "poisson") if open_loop else "closed-loop",
        # each Locust user has one request in flight at most
        "max_concurrency": min(cap, users) if open_loop and cap else users,
        "users": users,
        "dataset": dataset or "synthetic",
        "prompt_tokens": None if dataset else get("llm_prompt_tokens", 128),
        "max_tokens": get("llm_max_tokens", 128),
        "ignore_eos": bool(get("llm_ignore_eos", False)),
    }


def _process(load: dict[str, Any]) -> str:
    arrival = load["arrival"]
    if arrival == "closed-loop":
        return "closed loop: each user sends when its previous request ended"
    if arrival == "trace":
        return "recorded trace times"
    if arrival == "constant":
        return "constant intervals"
    if arrival == "poisson" or load["burstiness"] == 1.0:
        return "Poisson process"
    return "Gamma distribution"


def traffic_lines(load: dict[str, Any]) -> list[str]:
    """The three lines ``vllm bench serve`` prints before it starts sending."""
    burst = load["burstiness"]
    return [
        f"Traffic request rate: {load['request_rate']}",
        f"Burstiness factor: {burst if burst is not None else 'n/a'} ({_process(load)})",
        f"Maximum request concurrency: {load['max_concurrency']}",
    ]
