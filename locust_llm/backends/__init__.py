"""Backend stacks: vLLM (or emulator) replicas, NUMA/GPU placement, nginx in front.

    from locust_llm.backends import make_plan, Stack
    plan = make_plan(backend="cpu", model="M", vllm_cmd="python -m locust_llm.emulator")
    with Stack(plan, run_dir="reports/run1/backend") as stack:
        ...  # point clients at stack.url

Modules, one job each: `topology` (CPU/NUMA from sysfs or lscpu), `gpu` (nvidia-smi, TP
groups), `plan` (placement -> replicas), `vllm` (argv/env for `vllm serve`), `nginx` (config,
binary, access log), `process` (process groups, parent-death signal), `stack` (lifecycle),
`cli` (`locust-llm plan`). Nothing here imports Locust.
"""

from __future__ import annotations

from .errors import BackendError
from .plan import BACKENDS, LB_METHODS, Plan, Replica, Topology, make_plan
from .stack import Stack

__all__ = [
    "BACKENDS",
    "LB_METHODS",
    "BackendError",
    "Plan",
    "Replica",
    "Stack",
    "Topology",
    "make_plan",
]
