"""nginx in front of the replicas: config rendering (pure), finding the binary, its command line.

Settings (checked with a real nginx and SSE backends): no proxy or gzip
buffering so tokens are forwarded as they arrive, HTTP/1.1 keepalive to upstreams with a
keepalive timeout below uvicorn's 5 s, `max_fails=3 fail_timeout=10s` so a dead replica is
skipped for seconds (not hours), `proxy_next_upstream error timeout` so a connection refused
by a dead replica is retried on another one. POSTs are *not* retried once sent
(nginx needs `non_idempotent` for that): a stream cut by a dying replica is an error the load
test must count, not hide.

Multi-model routing. nginx cannot read the JSON body's `model` field without njs,
so each model gets its own upstream and two ways in:
- header: `X-Model: <served name>` on any path (`map $http_x_model $llm_upstream`). The
  OpenAI SDK sets it with `default_headers`, Locust users with a header; requests without
  the header go to the first model's upstream, an unknown value too (the replica then answers
  404 for the wrong model, as vLLM does).
- path prefix: `/models/<served name>/v1/...` is routed to that model with the prefix
  stripped, for clients that can only change the base URL.
The header was chosen as primary because clients keep the standard `/v1` base URL and the
same request body; the path prefix exists for tools where only the URL can be set.

Access log: one JSON object per line with `$upstream_addr` and `$upstream_response_time`
(comma-separated when nginx tried more than one upstream), for per-replica attribution;
`stub_status` at `/nginx_status` for connection counts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# the access-log parser lives with the other parsers of server output; importable here too
from locust_llm.servermetrics import parse_access_log, upstream_counts  # noqa: F401

from .errors import BackendError
from .names import DEFAULT_LB, LB_DIRECTIVES

STATUS_PATH = "/nginx_status"
MODEL_HEADER = "X-Model"
MODEL_PATH_PREFIX = "/models/"
_METHODS = LB_DIRECTIVES
_SEARCH = (
    "/usr/sbin/nginx",
    "/usr/local/sbin/nginx",
    "/usr/local/nginx/sbin/nginx",
    "/opt/homebrew/bin/nginx",
)
INSTALL_HINT = (
    "install it (Debian/Ubuntu: `sudo apt-get install nginx-light` or `nginx`; Fedora/RHEL: "
    "`sudo dnf install nginx`; macOS: `brew install nginx`), or point LOCUST_LLM_NGINX at the "
    "binary. nginx is only needed for more than one replica or model."
)


@dataclass(frozen=True)
class Upstream:
    """One model's replicas: `name` is the served model name, `servers` are host:port."""

    name: str
    servers: tuple[str, ...]


def _q(s: str) -> str:
    """Quote a string for nginx config (double quotes, escapes)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(
    run_dir: str | os.PathLike,
    upstreams: Sequence[Upstream],
    *,
    listen: str = "127.0.0.1:8000",
    method: str = DEFAULT_LB,
    workers: int = 2,
    worker_connections: int = 8192,
    read_timeout_s: int = 3600,
    user: str | None = None,
) -> str:
    """The complete nginx.conf for a run directory (all paths absolute under `run_dir`)."""
    if method not in _METHODS:
        raise BackendError(f"unknown lb method {method!r}: choose one of {', '.join(_METHODS)}.")
    if not upstreams or any(not u.servers for u in upstreams):
        raise BackendError("nginx needs at least one replica per model.")
    d = Path(run_dir).resolve()
    tmp = d / "nginx-tmp"
    lines = []
    if user:  # only meaningful (and only allowed) when the master runs as root
        lines.append(f"user {user};")
    lines += [
        f"worker_processes {workers};",
        f"pid {d / 'nginx.pid'};",
        f"error_log {d / 'nginx-error.log'} warn;",
        "events {",
        f"    worker_connections {worker_connections};",
        "}",
        "http {",
        '    log_format llm escape=json \'{"time":$msec,"upstream":"$upstream_addr",'
        '"status":$status,"upstream_status":"$upstream_status","request_time":$request_time,'
        '"upstream_response_time":"$upstream_response_time",'
        '"upstream_connect_time":"$upstream_connect_time","bytes_sent":$bytes_sent,'
        '"method":"$request_method","uri":"$request_uri","model":"$http_x_model"}\';',
        f"    access_log {d / 'access.log'} llm;",
        f"    client_body_temp_path {tmp / 'client_body'};",
        f"    proxy_temp_path {tmp / 'proxy'};",
        f"    fastcgi_temp_path {tmp / 'fastcgi'};",
        f"    uwsgi_temp_path {tmp / 'uwsgi'};",
        f"    scgi_temp_path {tmp / 'scgi'};",
        "    server_tokens off;",
        "    gzip off;",
        "    tcp_nodelay on;",
        "    client_max_body_size 64m;",
        "    client_body_buffer_size 1m;",
    ]
    for i, u in enumerate(upstreams):
        lines += [f"    upstream llm_{i} {{  # model {u.name}", f"        zone llm_{i} 256k;"]
        if _METHODS[method]:
            lines.append(f"        {_METHODS[method]}")
        lines += [f"        server {s} max_fails=3 fail_timeout=10s;" for s in u.servers]
        lines += ["        keepalive 256;", "        keepalive_timeout 4s;", "    }"]
    multi = len(upstreams) > 1
    if multi:
        lines.append("    map $http_x_model $llm_upstream {")
        lines.append("        default llm_0;")
        lines += [f"        {_q(u.name)} llm_{i};" for i, u in enumerate(upstreams)]
        lines.append("    }")
    lines += [
        "    server {",
        f"        listen {listen};",
        "        proxy_http_version 1.1;",
        '        proxy_set_header Connection "";',
        "        proxy_set_header Host $host;",
        "        proxy_buffering off;",
        "        proxy_request_buffering off;",
        "        proxy_cache off;",
        "        proxy_connect_timeout 5s;",
        f"        proxy_read_timeout {read_timeout_s}s;",
        f"        proxy_send_timeout {read_timeout_s}s;",
        "        proxy_next_upstream error timeout;",
        f"        location = {STATUS_PATH} {{",
        "            stub_status;",
        "            access_log off;",
        "        }",
    ]
    if multi:
        for i, u in enumerate(upstreams):
            lines += [
                f"        location {_q(MODEL_PATH_PREFIX + u.name + '/')} {{",
                f"            proxy_pass http://llm_{i}/;",
                "        }",
            ]
        lines += [
            "        location / {",
            "            proxy_pass http://$llm_upstream;",
            "        }",
        ]
    else:
        lines += ["        location / {", "            proxy_pass http://llm_0;", "        }"]
    lines += ["    }", "}", ""]
    return "\n".join(lines)


def find_nginx() -> str:
    """Path of the nginx binary, or BackendError saying how to install it."""
    env = os.environ.get("LOCUST_LLM_NGINX")
    if env:
        if os.access(env, os.X_OK):
            return env
        raise BackendError(f"LOCUST_LLM_NGINX={env!r} is not an executable file; {INSTALL_HINT}")
    found = shutil.which("nginx")
    if found:
        return found
    for p in _SEARCH:  # /usr/sbin is often not on a normal user's PATH
        if os.access(p, os.X_OK):
            return p
    raise BackendError(f"nginx not found on PATH or in /usr/sbin; {INSTALL_HINT}")


def command(nginx: str, run_dir: str | os.PathLike) -> list[str]:
    """Unprivileged, foreground, everything under the run directory."""
    d = str(Path(run_dir).resolve())
    return [
        nginx,
        "-p",
        d,
        "-c",
        os.path.join(d, "nginx.conf"),
        "-e",
        "stderr",
        "-g",
        "daemon off;",
    ]


def prepare_run_dir(run_dir: str | os.PathLike) -> None:
    tmp = Path(run_dir) / "nginx-tmp"
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
