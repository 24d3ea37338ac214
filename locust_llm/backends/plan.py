"""Plans: which replicas to run, on which CPUs/GPUs, with which command and environment.

`plan_for` is pure given a topology (tests inject fixture topologies); the only I/O is reading
this host's topology when none is given and probing free ports when none are fixed.

Shapes:
- `cpu`: one replica per NUMA node (or N per node, or one per `tp` nodes), each under
  `numactl --cpunodebind=N --membind=N` with `VLLM_CPU_OMP_THREADS_BIND` = that node's physical
  cores minus `reserved_cpus` (kept for the API server process, which numactl still lets run
  on the node), `VLLM_CPU_NUM_OF_RESERVED_CPU`, `VLLM_CPU_KVCACHE_SPACE`, `--dtype bfloat16`.
  With several replicas per node, `--physcpubind=<its cores and their SMT siblings>` replaces
  `--cpunodebind` so replicas on one node do not share cores. `baseline=True` is the
  comparison: one replica, no numactl, no bind list (vLLM's own `auto`).
- `gpu`: replicas = GPUs // tp, one `CUDA_VISIBLE_DEVICES` group each (NVLink-connected where
  possible, see `gpu.choose_groups`), `CUDA_DEVICE_ORDER=PCI_BUS_ID` so indices mean what
  `nvidia-smi` shows, `--tensor-parallel-size`, `--gpu-memory-utilization`.
- `emulator` (default): `replicas` (default 1) emulator processes, no binding, so it runs on any
  laptop or CI box without numactl. To exercise a cpu/gpu plan with the emulator, use
  `backend="cpu"|"gpu"` with `vllm_cmd` pointing at the emulator: the plan is then identical
  to the real one (and a cpu plan then needs numactl).
- `external`: the given URLs, nothing launched.

nginx fronts the replicas when there is more than one replica or more than one model; a single
replica is used directly (one less hop, nothing to balance). `use_nginx=True` forces nginx.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import install as vllm_install
from . import vllm
from .args import BackendArgs
from .deployment import Plan, Replica, Topology
from .errors import BackendError
from .gpu import GpuTopology, choose_groups, read_gpu_topology
from .placement import Slot, cpu_slots, free_ports
from .topology import format_cpulist, read_cpu_topology

__all__ = ["Plan", "Replica", "Topology", "make_plan", "plan_for"]

DEFAULT_KV_FRACTION = 0.4  # of the node memory share; the rest holds weights and activations


def _slug(name: str) -> str:
    base = name.rstrip("/").split("/")[-1].lower()
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in base) or "model"


def _norm_models(
    model: str | None, replicas: int | None, models: Sequence[dict] | None, tp: int
) -> list[dict]:
    if models:
        out = []
        for m in models:
            if "name" not in m:
                raise BackendError(f"each entry of models needs a 'name': got {m!r}")
            out.append(
                {
                    "name": m["name"],
                    "model": m.get("model", m["name"]),
                    "replicas": m.get("replicas"),
                    "tp": int(m.get("tp", tp)),
                    "serve_args": list(m.get("serve_args", [])),
                }
            )
        return out
    if not model:
        raise BackendError("no model given: pass model='NAME' (or --model NAME).")
    return [{"name": model, "model": model, "replicas": replicas, "tp": tp, "serve_args": []}]


def make_plan(backend: str = "emulator", model: str | None = None, **options: Any) -> Plan:
    """The plan for :class:`BackendArgs` given as keywords (scripts and tests)."""
    return plan_for(BackendArgs(backend, model, **options))


def plan_for(a: BackendArgs) -> Plan:
    """Compute the deployment: pure given ``a.topology`` and ``a.base_port``."""
    backend, model, tp, lb = a.backend, a.model, a.tp, a.lb
    models, urls, vllm_cmd, serve_args = a.models, a.urls, a.vllm_cmd, a.serve_args
    host, listen_host, base_port, nginx_port = a.host, a.listen_host, a.base_port, a.nginx_port
    use_nginx, installed, reserved_cpus = a.use_nginx, a.installed, a.reserved_cpus
    topology = a.topology or Topology()
    notes: list[str] = []
    summary = ""

    if backend == "external":
        if not urls:
            raise BackendError("backend 'external' needs urls=[...] (--url http://host:port).")
        reps = []
        name = model or (models[0]["name"] if models else "default")
        for i, u in enumerate(urls):
            parts = urlsplit(u if "//" in u else "http://" + u)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise BackendError(f"cannot use external URL {u!r}: expected http://host:port.")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            reps.append(
                Replica(
                    name=f"ext-{i}",
                    model=name,
                    model_path=name,
                    host=parts.hostname,
                    port=port,
                    external_url=f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}",
                )
            )
        nginx = use_nginx if use_nginx is not None else len(reps) > 1
        if nginx and any(r.external_url != f"http://{r.address}" for r in reps):
            raise BackendError(
                "nginx can only front plain http://host:port URLs; pass a single URL "
                "(no balancing) or URLs without paths."
            )
        port = nginx_port or (base_port if base_port else free_ports(1, listen_host)[0])
        return Plan(
            backend, lb, reps, listen_host, port if nginx else None, nginx, False, "external"
        )

    entries = _norm_models(model, a.replicas, models, tp)
    multi = len(entries) > 1
    if backend == "emulator":
        exe = vllm.split_cmd(vllm_cmd, vllm.emulator_cmd())
    elif vllm_cmd:
        exe = vllm.split_cmd(vllm_cmd, vllm.VLLM_SERVE)
    else:
        if installed is True:
            installed = vllm_install.find_vllm()
        if isinstance(installed, vllm_install.VllmInstall):
            exe = [*installed.cmd, "serve"]
            notes.append(
                f"vLLM {installed.version or '?'} from {installed.prefix} ({installed.how})"
            )
        else:
            exe = list(vllm.VLLM_SERVE)
            installed = None

    # resources per entry, in order
    slot_lists: list[list[Slot]] = []
    if backend == "cpu":
        cpu = topology.cpu or read_cpu_topology(a.sysfs_root)
        ncores = sum(len(cpu.physical_cores(n.id)) for n in cpu.nodes)
        summary = (
            f"{len(cpu.nodes)} NUMA node(s), {ncores} physical cores, {len(cpu.cpus)} CPUs, "
            f"{cpu.threads_per_core} thread(s)/core ({cpu.source})"
        )
        tps = {e["tp"] for e in entries}
        if len(tps) > 1:
            raise BackendError("cpu plans need the same tp for every model.")
        if a.baseline:
            if multi or any((e["replicas"] or 1) != 1 for e in entries) or tp != 1:
                raise BackendError("baseline is one unbound replica: drop --replicas/--tp/models.")
            mem = sum(n.mem_kib for n in cpu.nodes)
            slot_lists = [[Slot(mem_kib=mem)]]
            notes.append(
                "baseline: no numactl and no VLLM_CPU_OMP_THREADS_BIND, i.e. plain `vllm serve` "
                "(vLLM's `auto` binding)"
            )
        else:
            per_node_default = len(cpu.nodes) // tps.pop()
            counts = [e["replicas"] or (1 if multi else per_node_default) for e in entries]
            slots = cpu_slots(cpu, sum(counts), entries[0]["tp"], a.smt, reserved_cpus)
            i = 0
            for c in counts:
                slot_lists.append(slots[i : i + c])
                i += c
    elif backend == "gpu":
        gtopo = topology.gpu or read_gpu_topology()
        nv = sum(1 for (a, b) in gtopo.links if a < b and gtopo.nvlinked(a, b))
        summary = (
            f"{len(gtopo.gpus)} GPU(s) {', '.join(sorted({g.name for g in gtopo.gpus}))}; "
            f"{nv} NVLink pair(s)"
        )
        remaining = gtopo
        for e in entries:
            want = e["replicas"] if (e["replicas"] or not multi) else 1
            groups = choose_groups(remaining, e["tp"], want)
            slot_lists.append([Slot(gpus=g) for g in groups])
            used = {x for g in groups for x in g}
            remaining = GpuTopology(
                tuple(g for g in remaining.gpus if g.index not in used), remaining.links
            )
    else:  # emulator
        slot_lists = [[Slot() for _ in range(e["replicas"] or 1)] for e in entries]

    total = sum(len(s) for s in slot_lists)
    nginx = use_nginx if use_nginx is not None else (total > 1 or multi)
    if base_port:
        ports = list(range(base_port + 1, base_port + 1 + total))
        port_nginx = nginx_port or base_port
    else:
        ports = free_ports(total, host)
        port_nginx = nginx_port or free_ports(1, listen_host)[0]

    preload: list[str] = []
    offline = False
    if backend in ("cpu", "gpu") and not vllm_cmd:
        if backend == "cpu":
            preload, missing = vllm_install.cpu_preload(installed or None)
            notes.extend(missing)
        offline = any(Path(os.path.expanduser(e["model"])).is_dir() for e in entries)
    reps: list[Replica] = []
    needs_numactl = False
    k = 0
    for e, slots in zip(entries, slot_lists):
        for i, slot in enumerate(slots):
            port = ports[k]
            k += 1
            env: dict[str, str] = {}
            prefix: list[str] = []
            dtype = None
            gmu = None
            tp_flag = e["tp"]
            omp_bind = None
            if preload:
                env["LD_PRELOAD"] = ":".join(preload)
            if offline:
                env["HF_HUB_OFFLINE"] = "1"  # a local folder: never ask the hub
            if backend == "cpu":
                dtype = "bfloat16"
                kv = a.kvcache_gib
                if kv is None and os.environ.get("VLLM_CPU_KVCACHE_SPACE", "").isdigit():
                    kv = int(os.environ["VLLM_CPU_KVCACHE_SPACE"])  # the user's own setting wins
                if kv is None:
                    kv = (
                        max(1, int(slot.mem_kib / 2**20 * DEFAULT_KV_FRACTION))
                        if slot.mem_kib
                        else 4
                    )
                env["VLLM_CPU_KVCACHE_SPACE"] = str(kv)
                if slot.omp_lists is not None:
                    omp_bind = "|".join(format_cpulist(lst) for lst in slot.omp_lists)
                    env["VLLM_CPU_OMP_THREADS_BIND"] = omp_bind
                    env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(reserved_cpus)
                    nodes = format_cpulist(slot.numa_nodes or [])
                    if slot.physcpubind is not None:
                        bind = f"--physcpubind={format_cpulist(slot.physcpubind)}"
                    else:
                        bind = f"--cpunodebind={nodes}"
                    prefix = ["numactl", bind, f"--membind={nodes}"]
                    needs_numactl = True
            elif backend == "gpu":
                env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
                env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, slot.gpus or []))
                gmu = a.gpu_memory_utilization
            extra = [*serve_args, *e["serve_args"]]
            if dtype and any(a == "--dtype" or a.startswith("--dtype=") for a in extra):
                dtype = None
            args = vllm.serve_args(
                e["model"],
                host=host,
                port=port,
                served_model_name=e["name"],
                tp=tp_flag if (tp_flag != 1 or backend == "gpu") else None,
                dtype=dtype,
                gpu_memory_utilization=gmu,
                extra=extra,
            )
            reps.append(
                Replica(
                    name=f"{_slug(e['name'])}-{i}",
                    model=e["name"],
                    model_path=e["model"],
                    host=host,
                    port=port,
                    argv=[*prefix, *exe, *args],
                    env=env,
                    tp=tp_flag,
                    numa_nodes=slot.numa_nodes,
                    omp_bind=omp_bind,
                    gpus=slot.gpus,
                )
            )
    if needs_numactl and not shutil.which("numactl"):
        notes.append(
            "numactl is not installed here; this plan needs it (apt-get install numactl / "
            "dnf install numactl)"
        )
    if backend in ("cpu", "gpu") and not vllm_cmd and installed is None:
        notes.append(
            f"vLLM is not installed here: {vllm_install.INSTALL_HINT}; or pass --vllm-cmd "
            f"'{sys.executable} -m locust_llm.emulator' to run this plan with the emulator"
        )
    return Plan(
        backend=backend,
        lb=lb,
        replicas=reps,
        listen_host=listen_host,
        nginx_port=port_nginx if nginx else None,
        use_nginx=nginx,
        needs_numactl=needs_numactl,
        topology_summary=summary,
        notes=notes,
    )
