"""Backend stacks: vLLM (or emulator) replicas, NUMA/GPU placement, nginx in front.

    from locust_llm.backends import make_plan, Stack
    plan = make_plan(backend="cpu", model="M", vllm_cmd="python -m locust_llm.emulator")
    with Stack(plan, run_dir="reports/run1/backend") as stack:
        ...  # point clients at stack.url

Modules, one job each: `topology` (CPU/NUMA from sysfs or lscpu), `gpu` (nvidia-smi, TP
groups), `args` (the typed plan arguments and their one translator), `placement` (NUMA
slots, free ports), `plan` (arguments -> replicas), `deployment` (the plan's types), `vllm` (argv/env for `vllm serve`), `nginx` (config,
binary, access log), `process` (process groups, parent-death signal), `stack` (lifecycle),
`cli` (`locust-llm plan`). Nothing here imports Locust.
"""

from __future__ import annotations

from .args import BackendArgs, backend_args
from .deployment import Plan, Replica, Topology
from .errors import BackendError
from .names import LB_METHODS
from .names import STACK_BACKENDS as BACKENDS
from .plan import make_plan, plan_for
from .stack import Stack

__all__ = [
    "BACKENDS",
    "BackendArgs",
    "LB_METHODS",
    "BackendError",
    "Plan",
    "Replica",
    "Stack",
    "Topology",
    "backend_args",
    "make_plan",
    "plan_for",
]
