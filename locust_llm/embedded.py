"""Bring a backend stack up when Locust starts and down when it quits (``--llm-backend``).

``auto`` (the default) starts one built-in emulator when no ``--host`` is given, so
``locust -f locustfiles/chat.py`` works on a laptop with nothing else running. With ``--host``
it starts nothing. ``emulator``/``cpu``/``gpu`` start replicas from a plan (behind nginx when
there are several) and point Locust's host at them. Only the master (or the local runner)
starts anything; workers get the host from the master.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from locust_llm.emulator.cli import DEFAULT_MODEL
from locust_llm.options import LLMOptions

__all__ = ["DEFAULT_EMULATOR_MODEL", "start_backend", "stop_backend", "wanted_backend"]

log = logging.getLogger("locust_llm")

DEFAULT_EMULATOR_MODEL = DEFAULT_MODEL  # what `python -m locust_llm.emulator` serves


def wanted_backend(backend: str, host: str | None) -> str:
    """Resolve ``auto``: the emulator when there is no host, nothing when there is one."""
    if backend == "auto":
        return "none" if host else "emulator"
    return backend


def start_backend(environment: Any, rt: Any) -> None:
    opts = environment.parsed_options
    o = LLMOptions.of(opts)
    backend = wanted_backend(o.backend, environment.host)
    if backend in ("none", "external"):
        return
    from locust_llm.backends import BackendError, Stack, backend_args, plan_for

    if environment.host:
        log.warning(
            "--llm-backend %s replaces --host %s with the stack it starts",
            backend,
            environment.host,
        )
    model = o.model or (DEFAULT_EMULATOR_MODEL if backend == "emulator" else None)
    if model is None:
        _die(f"--llm-backend {backend} needs --llm-model (the model vLLM should serve)")
    api_key = rt.auth_header[len("Bearer ") :] if rt.auth_header else None
    try:
        plan = plan_for(
            backend_args(
                backend,
                model=model,
                tp=o.tp,
                replicas=o.replicas,
                lb=o.lb,
                vllm_cmd=o.vllm_cmd,
                serve_args=o.serve_args,
            )
        )
        run_dir = o.run_dir or tempfile.mkdtemp(prefix="locust-llm-")
        stack = Stack(plan, run_dir=Path(run_dir), api_key=api_key, log=log.debug)
        rt.stack = stack
        stack.start()
    except BackendError as e:
        stop_backend(rt)
        _die(str(e))
    except KeyboardInterrupt:
        stop_backend(rt)
        raise
    environment.host = stack.url
    if opts is not None:
        opts.host = stack.url
    if rt.model is None:
        rt.model = model
    what = "the built-in vLLM emulator" if backend == "emulator" else f"a {backend} vLLM stack"
    n = len(stack.replicas)
    log.info(
        "locust-llm: started %s (%d replica%s, model %s, pid %s) at %s; it stops when Locust "
        "quits (logs in %s)",
        what, n, "" if n == 1 else "s", model, ",".join(str(r.pid) for r in stack.replicas),
        stack.url, run_dir,
    )  # fmt: skip


def stop_backend(rt: Any) -> None:
    stack = getattr(rt, "stack", None)
    if stack is not None:
        rt.stack = None
        stack.stop()


def _die(message: str) -> None:
    sys.stderr.write(f"locust-llm: {message}\n")
    sys.exit(1)
