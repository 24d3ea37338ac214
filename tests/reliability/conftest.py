"""Helpers for reliability tests: locust subprocesses, process-tree bookkeeping, bad servers.

Everything here binds 127.0.0.1 on free ports and is killed in finalizers: a failing test
must not leave a server behind for the next one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from tests.runs import EMULATOR, LOCUST, ROOT, alive, free_port, records, run_locust
from tests.runs import emulator as start_emulator

FAST_EMU = "--emu-ttft-ms 5 --emu-itl-ms 2 --emu-eos-prob 0"
CHAT = ["-f", "locustfiles/chat.py", "--headless", "--llm-max-tokens", "16", "--llm-ignore-eos"]
__all__ = ["ROOT", "LOCUST", "EMULATOR", "alive", "free_port", "records", "run_locust"]


def descendants(pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """Wait for every pid to exit; return the survivors."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def kill_all(pids: list[int]) -> None:
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


def stack_children(pid: int) -> dict[str, list[psutil.Process]]:
    """The emulator replicas and nginx processes under a locust pid, by kind."""
    out: dict[str, list[psutil.Process]] = {"emulator": [], "nginx": []}
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return out
    for c in kids:
        try:
            cmd = " ".join(c.cmdline())
        except psutil.Error:
            continue
        if "locust_llm.emulator" in cmd:
            out["emulator"].append(c)
        elif "nginx" in cmd:
            out["nginx"].append(c)
    return out


def replica_port(p: psutil.Process) -> int:
    cmd = p.cmdline()
    return int(cmd[cmd.index("--port") + 1])


class LocustProc:
    """A background `locust` run whose stdout/stderr go to files under `tmp`."""

    def __init__(self, tmp: Path, args: list[str], env: dict | None = None) -> None:
        self.args = list(args)
        self.out = tmp / "locust.out"
        self.err = tmp / "locust.err"
        with open(self.out, "w") as o, open(self.err, "w") as e:
            self.proc = subprocess.Popen(
                LOCUST + args, cwd=ROOT, stdout=o, stderr=e, env={**os.environ, **(env or {})}
            )
        self.seen: set[int] = set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def remember(self) -> list[int]:
        """Record every descendant seen so far (checked for orphans at the end)."""
        self.seen.update(descendants(self.pid))
        return sorted(self.seen)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.remember()
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} in locust's output:\n{self.text()[-3000:]}")

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # say what it was doing: its output and what is left of its process tree
            tree = ",".join(str(x) for x in [self.pid, *descendants(self.pid)])
            ps = subprocess.run(["ps", "-o", "pid,ppid,pgid,stat,etime,args", "-p", tree],
                                capture_output=True, text=True)  # fmt: skip
            raise AssertionError(
                f"locust still running {timeout:g}s later; processes:\n{ps.stdout}\n"
                f"output:\n{self.text()[-4000:]}"
            ) from None

    def text(self) -> str:
        """stdout + stderr, and the --logfile if one is named in the arguments."""
        logs = [self.out, self.err]
        if "--logfile" in self.args:
            logs.append(Path(self.args[self.args.index("--logfile") + 1]))
        return "".join(p.read_text() for p in logs if p.exists())

    def cleanup(self) -> None:
        self.remember()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        kill_all([p for p in self.seen if alive(p)])


@pytest.fixture
def locust_bg(tmp_path) -> Iterator:
    procs: list[LocustProc] = []

    def start(args: list[str], env: dict | None = None, sub: str = "bg") -> LocustProc:
        d = tmp_path / sub
        d.mkdir(exist_ok=True)
        p = LocustProc(d, args, env)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.cleanup()


@pytest.fixture
def emulator() -> Iterator:
    """emulator(*args) -> base URL of a fresh emulator subprocess on a free port."""
    with ExitStack() as stack:
        yield lambda *args: stack.enter_context(start_emulator(*args))


# ---- a server that is not vLLM: each request gets the next canned answer -----------------
def _err(msg: str) -> bytes:
    return json.dumps({"error": {"message": msg, "type": "X", "code": 0}}).encode()


XSS = "<script>alert('xss')</script>"
# (status, content type, body, the words the failure message must contain)
BAD_ANSWERS: list[tuple[int, str, bytes, str]] = [
    (401, "application/json", _err("bad key"), "HTTP 401: bad key"),
    (403, "application/json", _err("forbidden here"), "HTTP 403: forbidden here"),
    (404, "application/json", _err("no such model"), "HTTP 404: no such model"),
    (400, "application/json", _err("prompt too long"), "HTTP 400: prompt too long"),
    (413, "text/html", b"<html><h1>413 Request Entity Too Large</h1></html>", "HTTP 413"),
    (429, "application/json", _err("slow down"), "HTTP 429: slow down"),
    (500, "application/json", _err(XSS), "HTTP 500"),
    (502, "text/html", b"<html>Bad Gateway</html>", "HTTP 502"),
    (503, "application/json", _err("queue full"), "HTTP 503: queue full"),
    (504, "text/plain", b"upstream timed out", "HTTP 504"),
    (200, "text/html", b"<html><body>Welcome to nginx!</body></html>", "not text/event-stream"),
    (200, "application/json", b'{"id":"x","object":"thing"}', "ignored stream=true"),
]


class BadServer:
    """Threaded HTTP/1.1 server cycling through BAD_ANSWERS (or `fixed`, one answer)."""

    def __init__(self, answers=None) -> None:
        answers = list(answers or BAD_ANSWERS)
        lock = threading.Lock()
        counter = [0]

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                if self.path.startswith("/v1/models"):
                    status, ctype, body = 200, "text/html", b"<html>not an API</html>"
                else:
                    with lock:
                        i = counter[0] % len(answers)
                        counter[0] += 1
                    status, ctype, body, _ = answers[i]
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *a) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def bad_server() -> Iterator[BadServer]:
    s = BadServer()
    yield s
    s.close()
