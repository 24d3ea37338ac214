"""`Stack`: bring a `Plan` up (replicas in parallel, readiness, nginx, one verified stream) and
take it down again (SIGTERM per process group, wait, SIGKILL; idempotent).

Layout of `run_dir`: `replica-<name>.log` per replica, `nginx.conf`, `nginx.log` (stderr),
`nginx-error.log`, `access.log` (JSON lines, see `nginx.py`), `nginx.pid`, `nginx-tmp/`.

`stack.url` is what clients use: nginx when the plan has it (more than one replica or model),
otherwise the single replica directly.
"""

from __future__ import annotations

import getpass
import http.client
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from . import nginx as nginx_mod
from .deployment import Plan, Replica
from .errors import BackendError
from .install import INSTALL_HINT, check_model
from .logcheck import start_failure
from .process import port_in_use, spawn, stop_all, tail
from .vllm import is_emulator


def _get(url: str, headers: dict[str, str], timeout: float = 2.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def serves_pooling(argv: list[str]) -> bool:
    """Whether ``vllm serve`` args run a pooling model (``--runner pooling``, ``--convert
    embed|classify``, either spelling), which serves no ``/v1/chat/completions``."""
    flat = " ".join(argv).replace("_", "-").replace("=", " ").split()
    pairs = set(zip(flat, flat[1:]))
    return ("--runner", "pooling") in pairs or bool(
        pairs & {("--convert", "embed"), ("--convert", "classify")}
    )


def stream_once(
    base_url: str,
    model: str,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
    path: str = "/v1/chat/completions",
) -> int:
    """Send one streamed chat request; return the number of `data:` events before `[DONE]`.

    Raises BackendError when the status is not 200 or the stream ends without `[DONE]`.
    """
    u = urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 4,
            "stream": True,
        }
    )
    hdrs = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
    hdrs.update(headers or {})
    try:
        conn.request("POST", u.path.rstrip("/") + path, body=body, headers=hdrs)
        resp = conn.getresponse()
        if resp.status != 200:
            raise BackendError(
                f"streamed request to {base_url} for model {model!r} got HTTP {resp.status}: "
                f"{resp.read()[:300]!r}"
            )
        events = 0
        while True:
            line = resp.readline()
            if not line:
                raise BackendError(
                    f"stream from {base_url} ended without `data: [DONE]` after {events} events"
                )
            line = line.strip()
            if line == b"data: [DONE]":
                return events
            if line.startswith(b"data:"):
                events += 1
    except OSError as e:
        raise BackendError(f"streamed request to {base_url} failed: {e}") from e
    finally:
        conn.close()


class Stack:
    """A running deployment. Use as a context manager, or call `start()` and `stop()`."""

    def __init__(
        self,
        plan: Plan,
        run_dir: str | os.PathLike,
        api_key: str | None = None,
        ready_timeout: float = 900.0,
        log: Callable[[str], None] = print,
        verify: bool = True,
        nginx_workers: int | None = None,
        stop_grace_s: float = 15.0,
    ) -> None:
        self.plan = plan
        self.run_dir = Path(run_dir)
        self.api_key = api_key
        self.ready_timeout = ready_timeout
        self.log = log
        self.verify = verify
        self.nginx_workers = nginx_workers or max(1, min(4, os.cpu_count() or 1))
        self.stop_grace_s = stop_grace_s
        self._procs: dict[str, subprocess.Popen] = {}
        self._nginx: subprocess.Popen | None = None
        self._nginx_box: list[subprocess.Popen] = []  # shared with the finalizer
        self._finalizer = weakref.finalize(self, Stack._atexit_stop, self._procs, self._nginx_box)

    # ---- public surface -------------------------------------------------------------------
    @property
    def replicas(self) -> list[Replica]:
        return self.plan.replicas

    @property
    def url(self) -> str:
        return self.plan.url

    @property
    def nginx_status_url(self) -> str | None:
        if not self.plan.use_nginx:
            return None
        return f"http://{self.plan.listen_host}:{self.plan.nginx_port}{nginx_mod.STATUS_PATH}"

    @property
    def access_log(self) -> Path:
        return self.run_dir / "access.log"

    @property
    def pids(self) -> list[int]:
        """Every process we started (replicas and nginx master)."""
        out = [p.pid for p in self._procs.values()]
        if self._nginx is not None:
            out.append(self._nginx.pid)
        return out

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- start ----------------------------------------------------------------------------
    def start(self) -> Stack:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._preflight()
            t0 = time.monotonic()
            self._spawn_replicas()
            self._wait_ready()
            self.log(
                f"locust-llm: {len(self._procs)} replica(s) ready in {time.monotonic() - t0:.1f}s"
            )
            if self.plan.use_nginx:
                self._start_nginx()
            if self.verify:
                self._verify()
            self.log(f"locust-llm: backend up at {self.url}")
        except BaseException:
            self.stop()
            raise
        return self

    def _preflight(self) -> None:
        launched = [r for r in self.replicas if r.launched]
        for r in launched:
            if port_in_use(r.host, r.port):
                raise BackendError(
                    f"port {r.port} on {r.host} (replica {r.name}) is already in use: stop what "
                    f"holds it (`ss -ltnp 'sport = :{r.port}'`) or plan again for free ports."
                )
        if self.plan.use_nginx:
            port = self.plan.nginx_port
            if port_in_use(self.plan.listen_host, port):
                raise BackendError(
                    f"nginx port {port} on {self.plan.listen_host} is already in use: stop what "
                    f"holds it (`ss -ltnp 'sport = :{port}'`) or choose another port."
                )
            self._nginx_bin = nginx_mod.find_nginx()
        for r in launched:
            exe = r.argv[0]
            if shutil.which(exe) is None:
                if exe == "numactl":
                    raise BackendError(
                        "numactl is required for this CPU plan (NUMA binding) but is not "
                        "installed: `sudo apt-get install numactl` (or dnf/yum), or use "
                        "--baseline / --backend emulator for an unbound run."
                    )
                if exe == "vllm":
                    raise BackendError(f"vLLM is not installed here: {INSTALL_HINT}.")
                raise BackendError(f"executable {exe!r} for replica {r.name} not found on PATH.")
            if not is_emulator(r.argv):
                problem = check_model(r.model_path)
                if problem:
                    raise BackendError(problem + ".")

    def _spawn_replicas(self) -> None:
        # Spawned from this thread (PDEATHSIG is tied to the forking thread), all before
        # waiting, so replicas load in parallel.
        if threading.current_thread() is not threading.main_thread():
            self.log(
                "locust-llm: warning: Stack started from a non-main thread; its processes "
                "get their parent-death signal when *this thread* exits"
            )
        for r in self.replicas:
            if not r.launched:
                continue
            argv = list(r.argv)
            env = dict(r.env)
            if self.api_key:
                # vLLM (and the emulator) read VLLM_API_KEY; argv is world-readable in
                # /proc/PID/cmdline and `ps`, the environment only by the owner
                env["VLLM_API_KEY"] = self.api_key
            r.log_path = self.run_dir / f"replica-{r.name}.log"
            death = signal.SIGKILL if is_emulator(argv) else signal.SIGTERM
            proc = spawn(argv, log_path=r.log_path, env=env, death_signal=death)
            self._procs[r.name] = proc
            r.pid = proc.pid
            self.log(f"locust-llm: started {r.name} pid {proc.pid} on {r.url} (log {r.log_path})")

    def _wait_ready(self) -> None:
        pending = {r.name: r for r in self.replicas}
        deadline = time.monotonic() + self.ready_timeout
        delay = 0.05
        while pending:
            for name, r in list(pending.items()):
                proc = self._procs.get(name)
                if proc is not None and proc.poll() is not None:
                    text = tail(r.log_path)
                    cause = start_failure(text, proc.returncode)
                    raise BackendError(
                        f"replica {name} exited with code {proc.returncode} before it was "
                        f"ready{': ' + cause if cause else ''}; last 20 lines of "
                        f"{r.log_path}:\n{text}"
                    )
                if self._ready(r):
                    del pending[name]
            if not pending:
                break
            if time.monotonic() > deadline:
                name, r = next(iter(pending.items()))
                text = tail(r.log_path)
                where = (
                    f"last 20 lines of {r.log_path}:\n{text}"
                    if text.strip()
                    else f"its log {r.log_path} is empty (it printed nothing yet)"
                )
                raise BackendError(
                    f"replica {name} ({r.url}) not healthy after {self.ready_timeout:.0f}s "
                    f"(raise ready_timeout for big models); {where}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def _ready(self, r: Replica) -> bool:
        try:
            if r.launched:  # external servers (and hosted APIs) may have no /health
                status, _ = _get(r.url + "/health", self.headers(), timeout=2.0)
                if status != 200:
                    return False
            status, body = _get(r.url + "/v1/models", self.headers(), timeout=5.0)
        except (OSError, http.client.HTTPException):
            return False  # connection refused until the server listens
        if status == 401:
            raise BackendError(
                f"replica {r.name} answered 401 on /v1/models: the API key does not match "
                "(pass the same api_key the server was started with)."
            )
        if status != 200:
            return False
        try:
            ids = [m.get("id") for m in json.loads(body).get("data", [])]
        except (ValueError, AttributeError):
            return False
        if r.model not in ids:
            raise BackendError(
                f"replica {r.name} serves {ids}, not {r.model!r}: check --served-model-name."
            )
        return True

    def _start_nginx(self) -> None:
        groups: dict[str, list[str]] = {}
        for r in self.replicas:
            groups.setdefault(r.model, []).append(r.address)
        ups = [nginx_mod.Upstream(m, tuple(s)) for m, s in groups.items()]
        user = getpass.getuser() if os.geteuid() == 0 else None
        conf = nginx_mod.render_config(
            self.run_dir,
            ups,
            listen=f"{self.plan.listen_host}:{self.plan.nginx_port}",
            method=self.plan.lb,
            workers=self.nginx_workers,
            user=user,
        )
        nginx_mod.prepare_run_dir(self.run_dir)
        (self.run_dir / "nginx.conf").write_text(conf)
        log_path = self.run_dir / "nginx.log"
        self._nginx = spawn(
            nginx_mod.command(self._nginx_bin, self.run_dir),
            log_path=log_path,
            death_signal=signal.SIGTERM,  # the master then stops its workers
        )
        self._nginx_box.append(self._nginx)
        self.log(
            f"locust-llm: nginx pid {self._nginx.pid} on {self.url} (conf {self.run_dir / 'nginx.conf'})"
        )
        deadline = time.monotonic() + 15
        while True:
            if self._nginx.poll() is not None:
                text = tail(log_path) + "\n" + tail(self.run_dir / "nginx-error.log")
                if "Address already in use" in text:
                    raise BackendError(
                        f"nginx could not listen on {self.plan.listen_host}:{self.plan.nginx_port}: "
                        "port already in use; stop what holds it or choose another port."
                    )
                raise BackendError(f"nginx exited with code {self._nginx.returncode}:\n{text}")
            try:
                status, _ = _get(self.nginx_status_url, {}, timeout=1.0)
                if status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise BackendError(f"nginx did not answer within 15s:\n{tail(log_path)}")
            time.sleep(0.05)

    def _verify(self) -> None:
        if any(serves_pooling(r.argv) for r in self.plan.replicas):
            return  # a pooling model has no chat route; the run's pre-flight checks its own
        for m in self.plan.models:
            headers = dict(self.headers())
            if len(self.plan.models) > 1:
                headers[nginx_mod.MODEL_HEADER] = m
            n = stream_once(self.url, m, headers)
            if n == 0:
                raise BackendError(f"streamed request for {m!r} through {self.url} got no events")

    # ---- stop -----------------------------------------------------------------------------
    def stop(self) -> None:
        """nginx first (SIGQUIT: graceful), then every replica group (SIGTERM, then SIGKILL)."""
        if self._nginx is not None:
            stop_all([self._nginx], first=signal.SIGQUIT, grace_s=5.0)
            self._nginx = None
        procs = list(self._procs.values())
        if procs:
            stop_all(procs, first=signal.SIGTERM, grace_s=self.stop_grace_s)
        self._procs.clear()
        self._nginx_box.clear()

    def kill_replica(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Fault injection for tests and chaos runs: signal one replica's process group."""
        proc = self._procs[name]
        os.killpg(proc.pid, sig)

    @staticmethod
    def _atexit_stop(procs: dict, nginx_box: list) -> None:
        # weakref.finalize runs this at interpreter exit (or when the Stack is garbage
        # collected) if stop() was never called: a forgotten stack must not leak servers.
        live = list(nginx_box) + list(procs.values())
        if live:
            stop_all(live, first=signal.SIGTERM, grace_s=3.0)
