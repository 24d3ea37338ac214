"""What a plan is: its replicas (command, environment, placement) and how to describe them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import vllm
from .gpu import GpuTopology
from .topology import CpuTopology, format_cpulist, parse_cpulist

__all__ = ["Topology", "Replica", "Plan"]


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
    return parse_cpulist(text)
