"""The arguments of a backend plan, typed, and the one translator every front end uses.

``locust --llm-backend``, ``locust-llm scenarios`` and ``locust-llm plan`` all describe a
deployment with the same few words (backend, model(s), tp, replicas, balancer, command,
extra ``vllm serve`` arguments); :func:`backend_args` turns those words into
:class:`BackendArgs` with one set of defaults and one set of error messages, so the three
cannot drift apart.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import BackendError
from .names import DEFAULT_LB, LB_METHODS, STACK_BACKENDS

__all__ = ["BackendArgs", "backend_args"]


@dataclass(frozen=True)
class BackendArgs:
    """Everything a plan is computed from. ``base_port`` fixes ports (nginx at base_port,
    replicas after it), otherwise free ports are probed on ``host``. ``installed``: the vLLM
    to launch for cpu/gpu without ``vllm_cmd`` (True: find it on this host; None: none)."""

    backend: str = "emulator"
    model: str | None = None
    tp: int = 1
    replicas: int | None = None
    lb: str = DEFAULT_LB
    vllm_cmd: str | Sequence[str] | None = None
    serve_args: tuple[str, ...] = ()
    models: tuple[dict, ...] | None = None
    urls: tuple[str, ...] | None = None
    baseline: bool = False
    smt: bool = False
    reserved_cpus: int = 1
    kvcache_gib: int | None = None
    gpu_memory_utilization: float = 0.92
    topology: Any = None  # deployment.Topology; None: read this host's
    host: str = "127.0.0.1"
    base_port: int | None = None
    nginx_port: int | None = None
    listen_host: str = "127.0.0.1"
    use_nginx: bool | None = None
    sysfs_root: str | os.PathLike = "/sys"
    installed: Any = True  # install.VllmInstall | None | True

    def __post_init__(self) -> None:
        if self.backend not in STACK_BACKENDS:
            raise BackendError(
                f"unknown backend {self.backend!r}: choose one of {', '.join(STACK_BACKENDS)}."
            )
        if self.lb not in LB_METHODS:
            raise BackendError(f"unknown lb {self.lb!r}: choose one of {', '.join(LB_METHODS)}.")
        if not isinstance(self.tp, int) or self.tp < 1:
            raise BackendError(f"tp must be an integer >= 1, got {self.tp!r}.")
        if self.replicas is not None and (not isinstance(self.replicas, int) or self.replicas < 1):
            raise BackendError(f"replicas must be an integer >= 1, got {self.replicas!r}.")
        # sequences given as lists stay hashable and unshared with the caller
        object.__setattr__(self, "serve_args", tuple(self.serve_args))
        if self.models is not None:
            object.__setattr__(self, "models", tuple(self.models))
        if self.urls is not None:
            object.__setattr__(self, "urls", tuple(self.urls))


def backend_args(
    backend: str,
    *,
    model: str | None = None,
    models: Sequence[dict] | None = None,
    tp: int | None = None,
    replicas: int | None = None,
    lb: str | None = None,
    vllm_cmd: str | Sequence[str] | None = None,
    serve_args: str | Sequence[str] | None = None,
    urls: Sequence[str] | None = None,
    baseline: bool = False,
    **placement: Any,
) -> BackendArgs:
    """The plan's arguments from a front end's words: an empty value means the default
    (a web form or a scenario file leaves fields blank), ``serve_args`` may be one shell
    string (``--llm-serve-args "--max-num-seqs 32"``), and ``baseline`` only means something
    for cpu (elsewhere the plan is already unbound). ``placement`` passes the cpu/gpu/port
    fine-tuning that only ``locust-llm plan`` exposes."""
    if isinstance(serve_args, str):
        try:
            serve = tuple(shlex.split(serve_args))
        except ValueError as e:
            raise BackendError(f"cannot split the serve arguments {serve_args!r}: {e}.") from None
    else:
        serve = tuple(serve_args or ())
    return BackendArgs(
        backend=backend,
        model=None if models else (model or None),
        models=tuple(models) if models else None,
        tp=int(tp) if tp else 1,
        replicas=int(replicas) if replicas else None,
        lb=lb or DEFAULT_LB,
        vllm_cmd=vllm_cmd or None,
        serve_args=serve,
        urls=tuple(urls) if urls else None,
        baseline=bool(baseline) and backend == "cpu",
        **placement,
    )
