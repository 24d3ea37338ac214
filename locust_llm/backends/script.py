"""A plan as files a person can run: ``run.sh`` plus the ``nginx.conf`` it needs (pure).

Why: ``locust-llm plan`` prints each replica's command, but a masked key and an nginx command
whose config nobody wrote cannot be pasted and run. The script starts what :class:`Stack`
would start, the same way (same command lines and environment, nginx unprivileged under the
folder), logs each process to its own file, and stops them all when one exits or on Ctrl-C.
An API key is never written: the script requires ``VLLM_API_KEY`` in its environment, which
the replicas inherit (``vllm serve`` reads it).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from . import nginx as nginx_mod
from .deployment import Plan
from .errors import BackendError
from .vllm import SECRET_ENV, SECRET_FLAGS

__all__ = ["render_script", "render_nginx_conf"]

_NGINX_TMP = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")  # as prepare_run_dir makes


def render_nginx_conf(plan: Plan, run_dir: Path, user: str | None = None) -> str:
    """The nginx.conf :class:`Stack` would write for this plan, with paths under ``run_dir``."""
    groups: dict[str, list[str]] = {}
    for r in plan.replicas:
        if r.launched:
            groups.setdefault(r.model, []).append(r.address)
    ups = [nginx_mod.Upstream(m, tuple(s)) for m, s in groups.items()]
    return nginx_mod.render_config(
        run_dir, ups, listen=f"{plan.listen_host}:{plan.nginx_port}", method=plan.lb, user=user
    )


def _check_no_secret(argv: list[str]) -> None:
    for a in argv:
        if a in SECRET_FLAGS or any(a.startswith(f + "=") for f in SECRET_FLAGS):
            raise BackendError(
                f"{a.split('=', 1)[0]} in the serve arguments would be written into run.sh: "
                "pass the key with --api-key (run.sh then reads VLLM_API_KEY at run time)"
            )


def render_script(
    plan: Plan, run_dir: Path, nginx_bin: str, api_key: bool, workdir: Path | None = None
) -> str:
    """``run.sh`` for ``plan`` in ``run_dir``; ``api_key``: the replicas need VLLM_API_KEY.

    The script runs the replicas from ``workdir`` (default: the current directory, where the
    plan was made), as :class:`Stack` runs them from Locust's: a model given as a relative
    folder (``models/tiny-llama``) is found wherever run.sh is started from. Logs go to
    ``run_dir`` by absolute path.
    """
    d = run_dir.resolve()
    q = shlex.quote

    def at(name: str) -> str:
        return q(str(d / name))

    lines = [
        "#!/usr/bin/env bash",
        "# Written by `locust-llm plan --write`: starts the plan's replicas"
        + (" and nginx" if plan.use_nginx else "")
        + ", each logging to its own file here;",
        "# Ctrl-C (or any of them exiting) stops them all.",
        "set -euo pipefail",
        f"cd {q(str((workdir or Path.cwd()).resolve()))}",
    ]
    if api_key:
        lines.append(
            ': "${VLLM_API_KEY:?export VLLM_API_KEY (the replicas require it; '
            'it is never written here)}"'
        )
        lines.append("export VLLM_API_KEY")
    lines += [
        "stop() { trap - EXIT INT TERM; kill $(jobs -p) 2>/dev/null || true; wait; }",
        "trap stop EXIT",
        "trap 'stop; exit 130' INT TERM",
    ]
    for r in plan.replicas:
        if not r.launched:
            continue
        _check_no_secret(r.argv)
        env = {k: v for k, v in r.env.items() if k not in SECRET_ENV}
        parts = [f"{k}={q(v)}" for k, v in sorted(env.items())]
        cmd = " ".join(["env", *parts, shlex.join(r.argv)]) if parts else shlex.join(r.argv)
        log = at(f"replica-{r.name}.log")
        lines.append(f"{cmd} > {log} 2>&1 &")
        lines.append(f'echo "replica {r.name}: pid $! on {r.url} (log {d}/replica-{r.name}.log)"')
    if plan.use_nginx:
        lines.append("mkdir -p " + " ".join(at(f"nginx-tmp/{s}") for s in _NGINX_TMP))
        lines.append(f"{shlex.join(nginx_mod.command(nginx_bin, d))} > {at('nginx.log')} 2>&1 &")
        lines.append(f'echo "nginx: pid $! on {plan.url} (conf {d}/nginx.conf, log {d}/nginx.log)"')
    lines += [
        f'echo "entry: {plan.url} (ready when {plan.url}/health answers 200)"',
        "wait -n || true",
        'echo "a process exited; stopping the others" >&2',
        "",
    ]
    return "\n".join(lines)
