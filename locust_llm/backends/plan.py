"""Plans: which replicas to run, on which CPUs/GPUs, with which command and environment.

`make_plan` is pure given a topology (tests inject fixture topologies); the only I/O is reading
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
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from . import install as vllm_install
from . import vllm
from .errors import BackendError
from .gpu import GpuTopology, choose_groups, read_gpu_topology
from .names import DEFAULT_LB, LB_METHODS
from .names import STACK_BACKENDS as BACKENDS
from .topology import CpuTopology, format_cpulist, read_cpu_topology

DEFAULT_KV_FRACTION = 0.4  # of the node memory share; the rest holds weights and activations


@dataclass
class Topology:
    """What a plan is computed from; `None` parts are read from this host when needed."""

    cpu: CpuTopology | None = None
    gpu: GpuTopology | None = None


@dataclass
class Replica:
    """One server process (or one external URL). `pid`/`log_path` are set by `Stack.start`."""

    name: str
    model: str  # the served model name clients send
    model_path: str  # the MODEL argument of `vllm serve`
    host: str
    port: int
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    tp: int = 1
    numa_nodes: list[int] | None = None
    omp_bind: str | None = None
    gpus: list[int] | None = None
    external_url: str | None = None
    pid: int | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return self.external_url or f"http://{self.host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return self.url + "/metrics"

    @property
    def address(self) -> str:
        """host:port as nginx's `server` line and `$upstream_addr` write it."""
        return f"{self.host}:{self.port}"

    @property
    def launched(self) -> bool:
        return self.external_url is None

    def shell_line(self, api_key: str | None = None) -> str:
        """The command as `Stack` runs it; the key goes in `VLLM_API_KEY` (masked), as there."""
        env = {**self.env, "VLLM_API_KEY": api_key} if api_key else self.env
        return vllm.shell_line(self.argv, env)


@dataclass
class Plan:
    backend: str
    lb: str
    replicas: list[Replica]
    listen_host: str = "127.0.0.1"
    nginx_port: int | None = None
    use_nginx: bool = False
    needs_numactl: bool = False
    topology_summary: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(r.model for r in self.replicas))

    @property
    def url(self) -> str:
        if self.use_nginx:
            return f"http://{self.listen_host}:{self.nginx_port}"
        return self.replicas[0].url

    def commands(self, api_key: str | None = None) -> list[str]:
        return [r.shell_line(api_key) for r in self.replicas if r.launched]

    def describe(self, api_key: str | None = None) -> str:
        """Human-readable plan plus the exact shell commands (secrets masked)."""
        lines = [
            f"backend: {self.backend}   models: {', '.join(self.models)}   "
            f"replicas: {len(self.replicas)}   lb: {self.lb}",
        ]
        if self.topology_summary:
            lines.append(f"topology: {self.topology_summary}")
        lines.append(
            f"entry: {self.url}" + ("  (nginx)" if self.use_nginx else "  (direct, no nginx)")
        )
        lines.append("")
        for r in self.replicas:
            where = []
            if r.numa_nodes is not None:
                where.append(f"numa {format_cpulist(r.numa_nodes)}")
            if r.omp_bind:
                n = sum(len(_expand(part)) for part in r.omp_bind.split("|"))
                where.append(f"omp {r.omp_bind} ({n} threads)")
            if r.gpus is not None:
                where.append(f"gpus {','.join(map(str, r.gpus))}")
            if r.tp != 1:
                where.append(f"tp {r.tp}")
            lines.append(f"  {r.name:<16} {r.model:<24} {r.url:<24} {'  '.join(where)}")
        for note in self.notes:
            lines.append(f"note: {note}")
        lines += ["", "# commands, one per replica, as the run starts them"]
        if api_key:
            lines.append("# (the key is masked: export VLLM_API_KEY in their environment)")
        lines += self.commands(api_key)
        if self.use_nginx:
            lines.append(
                "nginx -p RUN_DIR -c RUN_DIR/nginx.conf -e stderr -g 'daemon off;'"
                "   # needs RUN_DIR/nginx.conf"
            )
        lines.append("# `locust-llm plan ... --write DIR` writes DIR/run.sh and the nginx config")
        return "\n".join(lines)


def _expand(text: str) -> list[int]:
    from .topology import parse_cpulist

    return parse_cpulist(text)


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """`n` distinct ports that were free on `host` a moment ago (held open together)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _slug(name: str) -> str:
    base = name.rstrip("/").split("/")[-1].lower()
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in base) or "model"


@dataclass
class _Slot:
    """The resources of one replica, before its command is built."""

    numa_nodes: list[int] | None = None
    physcpubind: list[int] | None = None
    omp_lists: list[list[int]] | None = None
    mem_kib: int = 0
    gpus: list[int] | None = None


def cpu_slots(
    topo: CpuTopology, count: int, tp: int = 1, smt: bool = False, reserved: int = 1
) -> list[_Slot]:
    """NUMA placement for `count` replicas of `tp` ranks each (one rank per node)."""
    nodes = [n.id for n in topo.nodes]
    groups = [nodes[i : i + tp] for i in range(0, len(nodes) - tp + 1, tp)]
    if not groups:
        raise BackendError(
            f"tp={tp} on CPU puts one rank per NUMA node, but this host has {len(nodes)} "
            "node(s): lower --tp."
        )

    def cores_of(cores: list[int]) -> list[int]:
        if smt:
            return sorted(c for core in cores for c in topo.siblings(core))
        return cores

    def omp(cores: list[int]) -> list[int]:
        keep = cores[: max(1, len(cores) - reserved)] if reserved > 0 else cores
        return cores_of(keep)

    slots: list[_Slot] = []
    if count <= len(groups):
        for g in groups[:count]:
            slots.append(
                _Slot(
                    numa_nodes=g,
                    omp_lists=[omp(topo.physical_cores(n)) for n in g],
                    mem_kib=sum(topo.node(n).mem_kib for n in g),
                )
            )
        return slots
    if tp != 1 or count % len(nodes):
        raise BackendError(
            f"cannot place {count} replicas (tp={tp}) on {len(nodes)} NUMA node(s): use a "
            f"multiple of {len(nodes)} replicas with tp=1, or at most {len(groups)}."
        )
    per = count // len(nodes)
    for n in nodes:
        cores = topo.physical_cores(n)
        if len(cores) < per:
            raise BackendError(
                f"node {n} has {len(cores)} physical cores, fewer than {per} replicas per node."
            )
        size = len(cores) // per
        for k in range(per):
            chunk = cores[k * size : (k + 1) * size]
            all_cpus = sorted(c for core in chunk for c in topo.siblings(core))
            slots.append(
                _Slot(
                    numa_nodes=[n],
                    physcpubind=all_cpus,
                    omp_lists=[omp(chunk)],
                    mem_kib=topo.node(n).mem_kib // per,
                )
            )
    return slots


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


def make_plan(
    backend: str = "emulator",
    model: str | None = None,
    tp: int = 1,
    replicas: int | None = None,
    lb: str = DEFAULT_LB,
    vllm_cmd: str | Sequence[str] | None = None,
    serve_args: Sequence[str] = (),
    models: Sequence[dict] | None = None,
    urls: Sequence[str] | None = None,
    baseline: bool = False,
    smt: bool = False,
    reserved_cpus: int = 1,
    kvcache_gib: int | None = None,
    gpu_memory_utilization: float = 0.92,
    topology: Topology | None = None,
    host: str = "127.0.0.1",
    base_port: int | None = None,
    nginx_port: int | None = None,
    listen_host: str = "127.0.0.1",
    use_nginx: bool | None = None,
    sysfs_root: str | os.PathLike = "/sys",
    installed: vllm_install.VllmInstall | None | bool = True,
) -> Plan:
    """Compute the deployment. `base_port` fixes ports (nginx at base_port, replicas after it);
    otherwise free ports are probed on `host`. `installed`: the vLLM to launch for cpu/gpu
    without `vllm_cmd` (True: find it on this host; None: none installed)."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}.")
    if lb not in LB_METHODS:
        raise BackendError(f"unknown lb {lb!r}: choose one of {', '.join(LB_METHODS)}.")
    topology = topology or Topology()
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

    entries = _norm_models(model, replicas, models, tp)
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
    slot_lists: list[list[_Slot]] = []
    if backend == "cpu":
        cpu = topology.cpu or read_cpu_topology(sysfs_root)
        ncores = sum(len(cpu.physical_cores(n.id)) for n in cpu.nodes)
        summary = (
            f"{len(cpu.nodes)} NUMA node(s), {ncores} physical cores, {len(cpu.cpus)} CPUs, "
            f"{cpu.threads_per_core} thread(s)/core ({cpu.source})"
        )
        tps = {e["tp"] for e in entries}
        if len(tps) > 1:
            raise BackendError("cpu plans need the same tp for every model.")
        if baseline:
            if multi or any((e["replicas"] or 1) != 1 for e in entries) or tp != 1:
                raise BackendError("baseline is one unbound replica: drop --replicas/--tp/models.")
            mem = sum(n.mem_kib for n in cpu.nodes)
            slot_lists = [[_Slot(mem_kib=mem)]]
            notes.append(
                "baseline: no numactl and no VLLM_CPU_OMP_THREADS_BIND, i.e. plain `vllm serve` "
                "(vLLM's `auto` binding)"
            )
        else:
            per_node_default = len(cpu.nodes) // tps.pop()
            counts = [e["replicas"] or (1 if multi else per_node_default) for e in entries]
            slots = cpu_slots(cpu, sum(counts), entries[0]["tp"], smt, reserved_cpus)
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
            slot_lists.append([_Slot(gpus=g) for g in groups])
            used = {x for g in groups for x in g}
            remaining = GpuTopology(
                tuple(g for g in remaining.gpus if g.index not in used), remaining.links
            )
    else:  # emulator
        slot_lists = [[_Slot() for _ in range(e["replicas"] or 1)] for e in entries]

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
                kv = kvcache_gib
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
                gmu = gpu_memory_utilization
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
