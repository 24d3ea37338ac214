"""`locust-llm plan`: print a backend plan and the exact commands (with environment) it runs.

Nothing is started. Without `--dry-run`, ports are probed free on this host and missing tools
(numactl, vllm, nginx) are reported; with `--dry-run`, ports are fixed (`--port`, default
8000: nginx there, replicas after it) so the output is reproducible. API keys are masked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from .args import backend_args
from .deployment import Plan, Topology
from .errors import BackendError
from .gpu import parse_gpu_topology
from .names import DEFAULT_LB, LB_METHODS
from .names import STACK_BACKENDS as BACKENDS
from .nginx import find_nginx
from .plan import plan_for
from .topology import read_cpu_topology


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="locust-llm plan", description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=BACKENDS, default="emulator")
    p.add_argument("--model", help="model to serve (also the served model name)")
    p.add_argument(
        "--models",
        help='several models: JSON list, e.g. \'[{"name":"a","replicas":2},{"name":"b"}]\'',
    )
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel size per replica")
    p.add_argument("--replicas", type=int, help="replica count (default: from topology)")
    p.add_argument("--lb", choices=LB_METHODS, default=DEFAULT_LB)
    p.add_argument("--vllm-cmd", help="executable instead of `vllm serve` (e.g. the emulator)")
    p.add_argument("--url", action="append", dest="urls", help="external server URL (repeat)")
    p.add_argument("--baseline", action="store_true", help="cpu: one unbound replica")
    p.add_argument("--smt", action="store_true", help="cpu: bind OMP threads to SMT siblings too")
    p.add_argument("--reserved-cpus", type=int, default=1, help="cpu: cores kept off OMP")
    p.add_argument("--kvcache-gib", type=int, help="cpu: VLLM_CPU_KVCACHE_SPACE per replica")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.92)
    p.add_argument("--sysfs-root", default="/sys", help="read CPU topology from this sysfs copy")
    p.add_argument(
        "--gpu-query", help="file with nvidia-smi --query-gpu output (instead of running it)"
    )
    p.add_argument("--gpu-topo", help="file with `nvidia-smi topo -m` output")
    p.add_argument("--host", default="127.0.0.1", help="address replicas listen on")
    p.add_argument("--port", type=int, help="nginx port; replicas use the following ports")
    p.add_argument("--api-key", help="printed masked")
    p.add_argument("--dry-run", action="store_true", help="fixed ports, no probing of this host")
    p.add_argument("--json", action="store_true", help="machine-readable plan")
    p.add_argument(
        "--write",
        metavar="DIR",
        help="write DIR/run.sh (starts the replicas and nginx, stops them on Ctrl-C) and "
        "DIR/nginx.conf; an API key is read from VLLM_API_KEY when run.sh runs, never written",
    )
    p.add_argument("serve_args", nargs=argparse.REMAINDER, help="-- extra `vllm serve` args")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    extra = [a for a in args.serve_args if a != "--"] if args.serve_args else []
    cpu_dir = os.path.join(args.sysfs_root, "devices", "system", "cpu")
    if args.sysfs_root != "/sys" and not os.path.isdir(cpu_dir):
        # a typo here would otherwise plan this host's topology, not the machine meant
        print(
            f"locust-llm plan: --sysfs-root {args.sysfs_root}: no {cpu_dir}; give the root of "
            "a sysfs copy (the folder holding devices/system/cpu)",
            file=sys.stderr,
        )
        return 2
    try:
        topo = Topology()
        if args.sysfs_root != "/sys" or args.backend == "cpu":
            topo.cpu = read_cpu_topology(args.sysfs_root)
        if args.gpu_query:
            with open(args.gpu_query) as q:
                topo_text = open(args.gpu_topo).read() if args.gpu_topo else ""
                topo.gpu = parse_gpu_topology(q.read(), topo_text)
        base = args.port or (8000 if args.dry_run else None)
        plan = plan_for(
            backend_args(
                args.backend,
                model=args.model,
                models=json.loads(args.models) if args.models else None,
                tp=args.tp,
                replicas=args.replicas,
                lb=args.lb,
                vllm_cmd=args.vllm_cmd,
                serve_args=extra,
                urls=args.urls,
                baseline=args.baseline,
                smt=args.smt,
                reserved_cpus=args.reserved_cpus,
                kvcache_gib=args.kvcache_gib,
                gpu_memory_utilization=args.gpu_memory_utilization,
                topology=topo,
                host=args.host,
                base_port=base,
                sysfs_root=args.sysfs_root,
            )
        )
        if plan.use_nginx and not args.dry_run:
            try:
                find_nginx()
            except BackendError as e:
                plan.notes.append(str(e))
    except BackendError as e:
        print(f"locust-llm plan: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:
        print(f"locust-llm plan: {e}", file=sys.stderr)
        return 2
    if args.write:
        try:
            written = write_plan(plan, args.write, api_key=bool(args.api_key))
        except (BackendError, OSError) as e:
            print(f"locust-llm plan: --write {args.write}: {e}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(plan_to_dict(plan, args.api_key), indent=2))
    else:
        print(plan.describe(api_key=args.api_key))
    if args.write:
        key = " VLLM_API_KEY=... (exported)" if args.api_key else ""
        print(f"\nwritten: {', '.join(written)}\nrun it:{key} bash {written[0]}")
    return 0


def write_plan(plan: Plan, folder: str, api_key: bool) -> list[str]:
    """run.sh (+ nginx.conf when the plan has nginx) in ``folder``; the paths written."""
    import getpass
    from pathlib import Path

    from .script import render_nginx_conf, render_script

    d = Path(folder).resolve()
    d.mkdir(parents=True, exist_ok=True)
    out = []
    nginx_bin = "nginx"
    if plan.use_nginx:
        try:
            nginx_bin = find_nginx()
        except BackendError:
            pass  # run.sh then looks it up on PATH; the plan's notes already say it is missing
        user = getpass.getuser() if os.geteuid() == 0 else None
        conf = d / "nginx.conf"
        conf.write_text(render_nginx_conf(plan, d, user=user))
        out.append(str(conf))
    script = d / "run.sh"
    script.write_text(render_script(plan, d, nginx_bin, api_key))
    script.chmod(0o755)
    return [str(script), *out]


def plan_to_dict(plan, api_key: str | None = None) -> dict:
    return {
        "backend": plan.backend,
        "lb": plan.lb,
        "url": plan.url,
        "nginx_port": plan.nginx_port,
        "topology": plan.topology_summary,
        "notes": plan.notes,
        "replicas": [
            {
                "name": r.name,
                "model": r.model,
                "url": r.url,
                "numa_nodes": r.numa_nodes,
                "omp_bind": r.omp_bind,
                "gpus": r.gpus,
                "tp": r.tp,
                "command": r.shell_line(api_key) if r.launched else None,
            }
            for r in plan.replicas
        ],
    }


if __name__ == "__main__":
    sys.exit(main())
