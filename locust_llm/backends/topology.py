"""CPU topology: NUMA nodes, their CPUs and memory, and SMT siblings.

Pure parsers over text plus thin readers, so plans can be computed for any machine from
fixture trees (`sysfs_root` points at a copy of `/sys`). The primary source is sysfs
(`devices/system/node/node*/{cpulist,meminfo}` and `devices/system/cpu/cpu*/topology/`);
`lscpu -p=CPU,CORE,SOCKET,NODE` is the fallback where sysfs lacks the files (containers
that mask `/sys`, kernels without NUMA).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Cpu:
    """One logical CPU: `core` is unique per (package, core id) across the machine."""

    id: int
    core: int
    package: int
    node: int


@dataclass(frozen=True)
class NumaNode:
    id: int
    cpus: tuple[int, ...]
    mem_kib: int = 0


@dataclass(frozen=True)
class CpuTopology:
    nodes: tuple[NumaNode, ...]
    cpus: dict[int, Cpu] = field(default_factory=dict)
    source: str = "sysfs"

    @property
    def threads_per_core(self) -> int:
        per_core: dict[tuple[int, int], int] = {}
        for c in self.cpus.values():
            per_core[(c.package, c.core)] = per_core.get((c.package, c.core), 0) + 1
        return max(per_core.values(), default=1)

    def node(self, node_id: int) -> NumaNode:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def physical_cores(self, node_id: int) -> list[int]:
        """One logical CPU (the lowest-numbered sibling) per physical core of a node.

        vLLM's CPU backend wants one OMP thread per physical core: two threads on SMT
        siblings fight over the same AVX-512/AMX units.
        """
        first: dict[tuple[int, int], int] = {}
        for cpu_id in sorted(self.node(node_id).cpus):
            c = self.cpus.get(cpu_id)
            key = (c.package, c.core) if c else (-1, cpu_id)
            first.setdefault(key, cpu_id)
        return sorted(first.values())

    def siblings(self, cpu_id: int) -> list[int]:
        """All logical CPUs sharing `cpu_id`'s physical core (itself included)."""
        c = self.cpus.get(cpu_id)
        if c is None:
            return [cpu_id]
        return sorted(
            x.id for x in self.cpus.values() if (x.package, x.core) == (c.package, c.core)
        )


def parse_cpulist(text: str) -> list[int]:
    """`0-3,8,10-11` -> [0, 1, 2, 3, 8, 10, 11] (the kernel's cpulist format)."""
    out: list[int] = []
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


def format_cpulist(cpus: list[int] | tuple[int, ...]) -> str:
    """[0, 1, 2, 3, 8] -> `0-3,8`: the form numactl and VLLM_CPU_OMP_THREADS_BIND accept."""
    ids = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(parts)


_MEMTOTAL = re.compile(r"MemTotal:\s+(\d+)\s*kB")


def parse_node_meminfo(text: str) -> int:
    """`Node 0 MemTotal:  790000000 kB` -> KiB (0 when absent)."""
    m = _MEMTOTAL.search(text)
    return int(m.group(1)) if m else 0


def parse_lscpu_p(text: str) -> CpuTopology:
    """Parse `lscpu -p` (columns CPU,Core,Socket,Node,...). Memory is unknown (0)."""
    cpus: dict[int, Cpu] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cols = line.split(",")
        cpu, core, sock = int(cols[0]), int(cols[1]), int(cols[2] or 0)
        node = int(cols[3]) if len(cols) > 3 and cols[3] else 0
        cpus[cpu] = Cpu(cpu, core, sock, node)
    by_node: dict[int, list[int]] = {}
    for c in cpus.values():
        by_node.setdefault(c.node, []).append(c.id)
    nodes = tuple(NumaNode(n, tuple(sorted(ids))) for n, ids in sorted(by_node.items()))
    return CpuTopology(nodes=nodes, cpus=cpus, source="lscpu")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def read_sysfs(sysfs_root: str | os.PathLike = "/sys") -> CpuTopology | None:
    """Read the topology from a sysfs tree; None when the tree has no CPU topology files."""
    root = Path(sysfs_root) / "devices" / "system"
    node_dirs = sorted(
        (p for p in (root / "node").glob("node[0-9]*") if p.is_dir()),
        key=lambda p: int(p.name[4:]),
    )
    nodes: list[NumaNode] = []
    node_of: dict[int, int] = {}
    for d in node_dirs:
        cpulist = _read(d / "cpulist")
        if cpulist is None:
            continue
        ids = parse_cpulist(cpulist)
        if not ids:  # memory-only nodes (CXL, HBM) have no CPUs to bind
            continue
        nid = int(d.name[4:])
        nodes.append(NumaNode(nid, tuple(ids), parse_node_meminfo(_read(d / "meminfo") or "")))
        node_of.update({i: nid for i in ids})
    online = _read(root / "cpu" / "online")
    all_ids = parse_cpulist(online) if online else sorted(node_of)
    if not all_ids:
        return None
    if not nodes:  # no NUMA support in the kernel: one node holds everything
        nodes = [NumaNode(0, tuple(all_ids), 0)]
        node_of = {i: 0 for i in all_ids}
    cpus: dict[int, Cpu] = {}
    for i in all_ids:
        topo = root / "cpu" / f"cpu{i}" / "topology"
        core, pkg = _read(topo / "core_id"), _read(topo / "physical_package_id")
        if core is None:
            return None
        cpus[i] = Cpu(i, int(core), int(pkg or 0), node_of.get(i, 0))
    return CpuTopology(nodes=tuple(nodes), cpus=cpus, source="sysfs")


def read_cpu_topology(sysfs_root: str | os.PathLike = "/sys") -> CpuTopology:
    """This host's CPU topology: sysfs first, `lscpu -p` second, else one node of all CPUs."""
    topo = read_sysfs(sysfs_root)
    if topo is not None:
        return topo
    lscpu = shutil.which("lscpu")
    if lscpu and str(sysfs_root) == "/sys":
        try:
            out = subprocess.run(
                [lscpu, "-p=CPU,CORE,SOCKET,NODE"], capture_output=True, text=True, timeout=10
            ).stdout
            if out.strip():
                return parse_lscpu_p(out)
        except (OSError, subprocess.SubprocessError):
            pass
    n = os.cpu_count() or 1
    return CpuTopology(
        nodes=(NumaNode(0, tuple(range(n))),),
        cpus={i: Cpu(i, i, 0, 0) for i in range(n)},
        source="cpu_count",
    )
