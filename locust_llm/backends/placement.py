"""Where replicas run: NUMA slots for CPU replicas, and free ports on this host."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from .errors import BackendError
from .topology import CpuTopology

__all__ = ["Slot", "cpu_slots", "free_ports"]


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


@dataclass
class Slot:
    """The resources of one replica, before its command is built."""

    numa_nodes: list[int] | None = None
    physcpubind: list[int] | None = None
    omp_lists: list[list[int]] | None = None
    mem_kib: int = 0
    gpus: list[int] | None = None


def cpu_slots(
    topo: CpuTopology, count: int, tp: int = 1, smt: bool = False, reserved: int = 1
) -> list[Slot]:
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

    slots: list[Slot] = []
    if count <= len(groups):
        for g in groups[:count]:
            slots.append(
                Slot(
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
                Slot(
                    numa_nodes=[n],
                    physcpubind=all_cpus,
                    omp_lists=[omp(chunk)],
                    mem_kib=topo.node(n).mem_kib // per,
                )
            )
    return slots
