"""GPU topology from `nvidia-smi`, and the choice of tensor-parallel groups.

Pure parsers (`parse_query_gpu`, `parse_topo_matrix`) and one thin reader
(`read_gpu_topology`). Groups are chosen so every pair of GPUs inside a tensor-parallel group
is NVLink-connected where the machine allows it: TP all-reduces every layer, and over PCIe
(`PIX`..`SYS`) that traffic dominates decode time.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .errors import BackendError

QUERY_GPU_ARGS = [
    "--query-gpu=index,uuid,name,memory.total,pci.bus_id",
    "--format=csv,noheader,nounits",
]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Higher is better. NV# ranks above every PCIe path, more bonded links above fewer.
_PCIE_RANK = {"PIX": 5, "PXB": 4, "PHB": 3, "NODE": 2, "SYS": 1}


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    memory_mib: int
    pci_bus_id: str


@dataclass(frozen=True)
class GpuTopology:
    gpus: tuple[Gpu, ...]
    links: dict[tuple[int, int], str] = field(default_factory=dict)

    def link(self, a: int, b: int) -> str:
        """The `nvidia-smi topo -m` cell between GPUs a and b (`X` on the diagonal)."""
        if a == b:
            return "X"
        return self.links.get((a, b)) or self.links.get((b, a)) or "SYS"

    def nvlinked(self, a: int, b: int) -> bool:
        return self.link(a, b).startswith("NV")


def link_rank(cell: str) -> int:
    """Order link types: `NV18` (100+18) > `NV4` > `PIX` > `PXB` > `PHB` > `NODE` > `SYS`."""
    m = re.fullmatch(r"NV(\d+)", cell)
    if m:
        return 100 + int(m.group(1))
    return _PCIE_RANK.get(cell, 0)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def parse_query_gpu(text: str) -> list[Gpu]:
    """Parse `nvidia-smi --query-gpu=index,uuid,name,memory.total,pci.bus_id --format=csv,noheader,nounits`."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cols = [c.strip() for c in line.split(",")]
        if len(cols) < 5:
            raise ValueError(f"unexpected nvidia-smi --query-gpu line: {line!r}")
        mem = int(float(cols[3])) if cols[3].replace(".", "", 1).isdigit() else 0
        gpus.append(Gpu(int(cols[0]), cols[1], cols[2], mem, cols[4]))
    return gpus


def parse_topo_matrix(text: str) -> dict[tuple[int, int], str]:
    """Parse `nvidia-smi topo -m` into {(i, j): cell} for GPU pairs.

    The header row is underlined with ANSI codes; columns are tab-separated; rows for NICs
    (`NIC0`) and the legend are ignored.
    """
    lines = [strip_ansi(line).rstrip("\n") for line in text.splitlines()]
    header: list[str] | None = None
    links: dict[tuple[int, int], str] = {}
    for line in lines:
        cells = [c.strip() for c in re.split(r"\t+|\s{2,}", line.strip())]
        if header is None:
            if cells and cells[0].startswith("GPU"):
                header = cells
            continue
        if not cells or not re.fullmatch(r"GPU\d+", cells[0]):
            if cells and cells[0] == "Legend:":
                break
            continue
        row = int(cells[0][3:])
        for col_name, cell in zip(header, cells[1:]):
            if re.fullmatch(r"GPU\d+", col_name):
                col = int(col_name[3:])
                if col != row:
                    links[(row, col)] = cell
    return links


def parse_gpu_topology(query_csv: str, topo_m: str = "") -> GpuTopology:
    return GpuTopology(tuple(parse_query_gpu(query_csv)), parse_topo_matrix(topo_m))


Runner = Callable[[list[str]], str]


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout


def read_gpu_topology(runner: Runner | None = None, nvidia_smi: str | None = None) -> GpuTopology:
    """This host's GPUs, or BackendError("no GPUs found ...") when there are none."""
    exe = nvidia_smi or shutil.which("nvidia-smi")
    if runner is None and exe is None:
        raise BackendError(
            "no GPUs found: `nvidia-smi` is not on PATH. Install the NVIDIA driver, run on a "
            "GPU host, or use --backend cpu / --backend emulator."
        )
    run = runner or _run
    exe = exe or "nvidia-smi"
    try:
        gpus = parse_query_gpu(run([exe, *QUERY_GPU_ARGS]))
    except (OSError, subprocess.SubprocessError) as e:
        raise BackendError(
            f"no GPUs found: `nvidia-smi --query-gpu` failed ({e}). Check the driver with "
            "`nvidia-smi`, or use --backend cpu / --backend emulator."
        ) from e
    if not gpus:
        raise BackendError("no GPUs found: nvidia-smi lists none. Use --backend cpu or emulator.")
    try:
        links = parse_topo_matrix(run([exe, "topo", "-m"]))
    except (OSError, subprocess.SubprocessError):
        links = {}  # topology unknown: groups fall back to index order
    return GpuTopology(tuple(gpus), links)


def _group_score(topo: GpuTopology, group: Sequence[int]) -> tuple[int, int, int]:
    pairs = list(itertools.combinations(group, 2))
    if not pairs:
        return (1, 0, 0)
    ranks = [link_rank(topo.link(a, b)) for a, b in pairs]
    return (int(all(r >= 100 for r in ranks)), min(ranks), sum(ranks))


def choose_groups(topo: GpuTopology, tp: int, replicas: int | None = None) -> list[list[int]]:
    """Partition GPUs into `replicas` groups of `tp`, NVLink-connected where possible.

    Exhaustive over partitions for up to 12 GPUs (at most ~15k candidates), greedy above.
    Score per group: all pairs NVLink?, weakest link, sum of links; ties go to lower indices
    so the result is deterministic.
    """
    indices = sorted(g.index for g in topo.gpus)
    if tp < 1:
        raise BackendError(f"tensor parallel size must be >= 1, got {tp}")
    most = len(indices) // tp
    if most == 0:
        raise BackendError(f"tp={tp} needs {tp} GPUs but this host has {len(indices)}: lower --tp.")
    want = most if replicas is None else replicas
    if want > most:
        raise BackendError(
            f"{want} replicas x tp={tp} need {want * tp} GPUs but this host has "
            f"{len(indices)}: lower --replicas or --tp."
        )
    if tp == 1:
        return [[i] for i in indices[:want]]

    def total(groups: list[tuple[int, ...]]) -> tuple[int, int, int]:
        scores = [_group_score(topo, g) for g in groups]
        return (sum(s[0] for s in scores), sum(s[1] for s in scores), sum(s[2] for s in scores))

    best: list[tuple[int, ...]] | None = None
    if len(indices) <= 12:
        best_score = None

        def search(rest: list[int], skips: int, acc: list[tuple[int, ...]]) -> None:
            nonlocal best, best_score
            if len(acc) == want:
                score = total(acc)
                if best_score is None or score > best_score:
                    best, best_score = list(acc), score
                return
            if len(rest) < tp:
                return
            head, tail = rest[0], rest[1:]
            for others in itertools.combinations(tail, tp - 1):
                remaining = [x for x in tail if x not in others]
                search(remaining, skips, [*acc, (head, *others)])
            if skips > 0:
                search(tail, skips - 1, acc)

        search(indices, len(indices) - want * tp, [])
    else:
        free = list(indices)
        best = []
        for _ in range(want):
            g = max(
                itertools.combinations(free, tp),
                key=lambda c: (_group_score(topo, c), [-x for x in c]),
            )
            best.append(g)
            free = [x for x in free if x not in g]
    assert best is not None
    return sorted([list(g) for g in best], key=lambda g: g[0])
