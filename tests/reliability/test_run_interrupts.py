"""Ctrl-C at each phase of `locust-llm run`: no orphans, finished scenarios kept, re-run resumes.

Each test runs `python -m locust_llm.cli run` on a two-scenario emulator file (2 replicas
behind nginx each), in its own session like a shell job, and sends SIGINT to that process
group (what a terminal's Ctrl-C does) once the run is provably in the phase under test:

- starting: scenario b's replicas are launched but not healthy (`--emu-startup-delay`);
- running: scenario b's Locust subprocess is up (its load window is ≥ 2 s);
- tearing down / collecting: these last milliseconds, so a `sitecustomize` on the CLI's
  PYTHONPATH (test-only; it removes itself from the environment, so children never see it)
  holds scenario a's first `Stack.stop()` / `_collect()` for a moment and prints a marker.

Every process the CLI starts is tracked by psutil (pid + start time, so a reused pid never
counts) while it runs; after it exits none may be alive. Each test also checks that the
interrupt really landed in its phase (from the progress lines and files), so a SIGINT that
came early or late fails the test instead of passing it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from locust_llm.backends import BackendError
from locust_llm.backends.nginx import find_nginx

from .conftest import ROOT

try:
    find_nginx()
    HAVE_NGINX = True
except BackendError:
    HAVE_NGINX = False
pytestmark = [
    pytest.mark.skipif(not HAVE_NGINX, reason="nginx not installed"),
    # Ctrl-C at a chosen phase of a run: the phase must not slip by on a loaded machine
    pytest.mark.timing,
]

EMU = '"--emu-profile", "constant", "--emu-ttft-ms", "20", "--emu-itl-ms", "5"'
HOOK_ENV = "LOCUST_LLM_TEST_PAUSE"
HOOK_SECONDS = 1.5
SITECUSTOMIZE = f'''
import os, sys, time

_where = os.environ.pop("{HOOK_ENV}", None)
if _where:
    os.environ.pop("PYTHONPATH", None)  # Locust and the replicas start without this hook
    from locust_llm.backends.stack import Stack
    from locust_llm.scenarios import runner

    def _hold(owner, name):
        orig = getattr(owner, name)
        done = []

        def held(*a, **k):
            if not done:
                done.append(1)
                print("TEST-HOOK: holding " + name, flush=True)
                time.sleep({HOOK_SECONDS})
            return orig(*a, **k)

        setattr(owner, name, held)

    if _where == "teardown":
        _hold(Stack, "stop")
    elif _where == "collect":
        _hold(runner, "_collect")
'''


def scenario_file(tmp_path: Path, b_run_time: str = "1s", b_emu: str = "") -> Path:
    p = tmp_path / "sweep.toml"
    p.write_text(
        "[defaults]\n"
        'model = "emu-model"\nlocustfile = "locustfiles/chat.py"\n'
        f"emulator_args = [{EMU}]\n"
        "max_tokens = 16\nprompt_tokens = 32\nusers = 2\nreplicas = 2\n"
        '[[scenario]]\nname = "a"\nrun_time = "1s"\n'
        f'[[scenario]]\nname = "b"\nrun_time = "{b_run_time}"\n'
        + (f"emulator_args = [{EMU}, {b_emu}]\n" if b_emu else "")
    )
    return p


class Run:
    """`locust-llm run` in its own session; stdout/stderr lines and every descendant recorded."""

    def __init__(self, argv: list[str], env: dict | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "locust_llm.cli", "run", *argv],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.seen: dict[tuple[int, float], psutil.Process] = {}
        self.cmds: dict[int, str] = {}  # pid -> command line, read while it lived
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
            threading.Thread(target=self._track, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read(self, stream, sink: list[str]) -> None:
        for line in stream:
            with self._lock:
                sink.append(line)

    def _track(self) -> None:
        try:
            me = psutil.Process(self.proc.pid)
        except psutil.Error:
            return
        while self.proc.poll() is None:
            self.remember(me)
            time.sleep(0.02)

    def remember(self, me: psutil.Process | None = None) -> None:
        try:
            kids = (me or psutil.Process(self.proc.pid)).children(recursive=True)
        except psutil.Error:
            return
        for c in kids:
            try:
                self.seen.setdefault((c.pid, c.create_time()), c)
                # re-read while it lives: between fork and exec it still shows our command line
                self.cmds[c.pid] = " ".join(c.cmdline())
            except psutil.Error:
                pass

    def stdout(self) -> str:
        with self._lock:
            return "".join(self.out)

    def text(self) -> str:
        with self._lock:
            return "".join(self.out) + "".join(self.err)

    def wait_line(self, pattern: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.stdout(), re.M):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        raise AssertionError(f"no {pattern!r} in the output:\n{self.text()[-3000:]}")

    def live(self, kind: str) -> list[psutil.Process]:
        """Live descendants right now whose command line contains `kind`."""
        self.remember()
        out = []
        for p in list(self.seen.values()):
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    if kind in self.cmds.get(p.pid, ""):
                        out.append(p)
            except psutil.Error:
                pass
        return out

    def wait_live(self, kind: str, n: int, timeout: float = 20.0) -> list[psutil.Process]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            procs = self.live(kind)
            if len(procs) >= n:
                return procs
            time.sleep(0.02)
        raise AssertionError(f"fewer than {n} {kind!r} processes:\n{self.text()[-3000:]}")

    def interrupt(self) -> None:
        self.remember()
        os.killpg(self.proc.pid, signal.SIGINT)

    def finish(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout=timeout)
        for t in self._threads[:2]:
            t.join(timeout=5)
        return code

    def survivors(self, timeout: float = 3.0) -> list[str]:
        """Everything it started that is still alive (pid reuse excluded by start time)."""
        deadline = time.monotonic() + timeout
        while True:
            left = []
            for p in self.seen.values():
                try:
                    if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                        left.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
                except psutil.Error:
                    pass
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for p in self.seen.values():
            try:
                if p.is_running():
                    p.kill()
            except psutil.Error:
                pass


@pytest.fixture
def cli():
    runs: list[Run] = []

    def start(argv: list[str], env: dict | None = None) -> Run:
        r = Run(argv, env)
        runs.append(r)
        return r

    yield start
    for r in runs:
        r.kill()


def _interrupt_then_resume(
    cli, tmp_path: Path, f: Path, in_phase, hook: str | None = None, landed=None
) -> str:
    """Run, let `in_phase(run)` wait for the phase, Ctrl-C, check (`landed(sweep, text)`:
    the phase's own evidence); then re-run the same command and check it resumed."""
    out = tmp_path / "reports"
    argv = [str(f), "--out", str(out), "--no-report"]
    env = None
    if hook:
        hook_dir = tmp_path / "hook"
        hook_dir.mkdir()
        (hook_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
        env = {"PYTHONPATH": str(hook_dir), HOOK_ENV: hook}
    run = cli(argv, env)
    in_phase(run)
    run.interrupt()
    code = run.finish()
    text = run.text()
    assert code == 130, text
    assert "interrupted; finished scenarios are kept, re-run to resume" in text
    assert "Traceback" not in text, text
    assert any("locust_llm.emulator" in c for c in run.cmds.values()), run.cmds
    assert run.survivors() == [], text
    sweep = out / "sweep"
    seen = {p.pid for p in run.seen.values()}
    for d in sweep.iterdir():  # what the runner says it started, the tracker saw too
        if (d / "pids.json").is_file():
            assert set(json.loads((d / "pids.json").read_text()).values()) <= seen, d
    if landed:
        landed(sweep, text)
    # scenario a finished before the interrupt: kept, with its summary
    a = sweep / "a"
    assert (a / ".done").is_file() and json.loads((a / "summary.json").read_text())["completed"]
    a_done = (a / ".done").read_text()
    assert not (sweep / "b" / ".done").exists()

    again = cli(argv)
    code = again.finish()
    text2 = again.text()
    assert code == 0, text2
    assert "1/2 a: finished earlier, kept" in text2
    assert re.search(r"2/2 b: done in", text2), text2
    assert (a / ".done").read_text() == a_done  # not run again
    assert (sweep / "b" / ".done").is_file()
    assert json.loads((sweep / "b" / "summary.json").read_text())["completed"] > 0
    assert again.survivors() == [], text2
    return text


def test_ctrl_c_while_starting(cli, tmp_path: Path):
    f = scenario_file(tmp_path, b_emu='"--emu-startup-delay", "1.5"')

    def in_phase(run: Run) -> None:
        run.wait_line(r"^\[.*\] 2/2 b: starting backend")
        run.wait_live("--emu-startup-delay", 2)  # both replicas of b launched, not healthy
        assert "2/2 b: backend up" not in run.stdout()

    def landed(sweep: Path, text: str) -> None:
        assert "2/2 b: interrupted: stopping Locust and the backend" in text
        assert "2/2 b: backend up" not in text and "2/2 b: load" not in text
        assert not (sweep / "b" / "pids.json").exists()  # written once the backend is up

    _interrupt_then_resume(cli, tmp_path, f, in_phase, landed=landed)


def test_ctrl_c_while_running(cli, tmp_path: Path):
    f = scenario_file(tmp_path, b_run_time="2s")

    def in_phase(run: Run) -> None:
        run.wait_line(r"^\[.*\] 2/2 b: load: ")
        run.wait_live("-m locust -f", 1)
        run.wait_live("nginx", 1)

    def landed(sweep: Path, text: str) -> None:
        assert "2/2 b: interrupted: stopping Locust and the backend" in text
        assert "2/2 b: done" not in text
        kinds = [json.loads(x)["kind"] for x in (sweep / "b" / "events.jsonl").open()]
        assert "load_start" in kinds and "load_end" not in kinds  # Locust had not finished
        assert len(json.loads((sweep / "b" / "pids.json").read_text())) == 4  # 2 + nginx + locust

    _interrupt_then_resume(cli, tmp_path, f, in_phase, landed=landed)


def test_ctrl_c_while_tearing_down(cli, tmp_path: Path):
    f = scenario_file(tmp_path)

    def in_phase(run: Run) -> None:
        run.wait_line(r"^TEST-HOOK: holding stop$")
        assert "1/2 a: load: " in run.stdout() and "1/2 a: done" not in run.stdout()
        # Locust has quit; the stack it measured is still up and about to be stopped
        assert run.live("-m locust -f") == []
        assert len(run.live("locust_llm.emulator")) == 2 and run.live("nginx")

    text = _interrupt_then_resume(cli, tmp_path, f, in_phase, hook="teardown")
    assert "1/2 a: done in" in text and "1/2 a: interrupted: stopping after this scenario" in text
    assert "2/2 b:" not in text  # the run stopped after a, it did not go on


def test_ctrl_c_while_collecting(cli, tmp_path: Path):
    f = scenario_file(tmp_path)

    def in_phase(run: Run) -> None:
        run.wait_line(r"^TEST-HOOK: holding _collect$")
        assert "1/2 a: load: " in run.stdout() and "1/2 a: done" not in run.stdout()
        # torn down already: nothing of a's stack is left while its results are collected
        assert run.live("-m locust -f") == [] and run.live("locust_llm.emulator") == []

    text = _interrupt_then_resume(cli, tmp_path, f, in_phase, hook="collect")
    assert "1/2 a: done in" in text and "1/2 a: interrupted: stopping after this scenario" in text
    assert "2/2 b:" not in text
