"""Run scenarios: stack up, Locust headless as a subprocess, scrape, collect, stack down.

Locust runs as `python -m locust -f LOCUSTFILE --headless ... --llm-backend none` so a
scenario measures through exactly the code path of a user's own `locust` run; this process
only orchestrates (and scrapes `/metrics` in a thread, away from Locust's greenlets).

Per scenario directory (`reports/<run-id>/<scenario>/`): scenario.json, summary.json,
records.jsonl, locust_*.csv, locust.log, server_metrics.jsonl, events.jsonl, backend/ (replica
and nginx logs), pids.json (every process started, for leak checks), and `.done` once the
scenario finished: a directory with `.done` whose scenario.json matches is skipped on re-run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .scrape import Scraper, Target
from .spec import ScenarioSpec

DONE = ".done"
LOCUST_STOP_GRACE = 10.0


@dataclass
class Outcome:
    name: str
    status: str  # "ok", "slo_failed", "error", "skipped", "interrupted"
    seconds: float = 0.0
    message: str = ""
    slo_passed: bool | None = None
    saturated: bool = False


class Progress:
    """One line per phase: elapsed wall time, scenario k/n, phase, ETA of the whole file."""

    def __init__(self, specs: list[ScenarioSpec], stream: Any = None) -> None:
        self.t0 = time.monotonic()
        self.total = len(specs)
        self.position = {s.name: k for k, s in enumerate(specs, start=1)}
        self.remaining_load = sum(self._load_s(s) for s in specs)
        self.overheads: list[float] = []
        self.stream = stream or sys.stdout

    @staticmethod
    def _load_s(spec: ScenarioSpec) -> float:
        return float(spec.run_time or 0.0)

    def eta(self, left: int) -> str:
        overhead = sum(self.overheads) / len(self.overheads) if self.overheads else 8.0
        return _hms(self.remaining_load + overhead * left)

    def finished(self, spec: ScenarioSpec, wall: float, left: int) -> None:
        load = self._load_s(spec)
        self.remaining_load = max(0.0, self.remaining_load - load)
        self.overheads.append(max(0.0, wall - load))

    def skipped(self, spec: ScenarioSpec) -> None:
        self.remaining_load = max(0.0, self.remaining_load - self._load_s(spec))

    def line(self, spec: ScenarioSpec, msg: str, left: int | None = None) -> None:
        eta = f"  (ETA {self.eta(left)})" if left is not None else ""
        print(
            f"[{_hms(time.monotonic() - self.t0)}] {self.position.get(spec.name, 0)}/{self.total} "
            f"{spec.name}: {msg}{eta}",
            file=self.stream,
            flush=True,
        )


def _hms(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _fmt_s(s: float) -> str:
    return f"{int(math.ceil(s))}s"


def locust_argv(spec: ScenarioSpec, host: str, d: Path, shim: Path | None = None) -> list[str]:
    """The Locust command line for one scenario (the same options a user would type)."""
    p = spec.params
    users = int(p["users"])
    files = p["locustfile"] if shim is None else f"{shim},{p['locustfile']}"
    argv = [
        sys.executable, "-m", "locust", "-f", files, "--headless",
        "-u", str(users), "-r", f"{float(p.get('spawn_rate') or users):g}",
        "--host", host, "--llm-backend", "none",
        "--llm-summary", str(d / "summary.json"), "--llm-records", str(d / "records.jsonl"),
        "--csv", str(d / "locust"), "--exit-code-on-error", "0",
    ]  # fmt: skip
    if spec.run_time:
        argv += ["-t", _fmt_s(spec.run_time)]
    if p.get("requests"):
        argv += ["--iterations", str(p["requests"])]
    if p.get("rate"):
        argv += ["--ips", f"{p['rate']:g}"]
    if p.get("warmup"):
        argv += ["--llm-warmup", f"{p['warmup']:g}"]
    model = p.get("model") if not p.get("models") else None
    if model:
        argv += ["--llm-model", model]
    for key, opt in (
        ("max_tokens", "--llm-max-tokens"),
        ("prompt_tokens", "--llm-prompt-tokens"),
        ("timeout", "--llm-timeout"),
    ):
        if p.get(key) is not None:
            argv += [opt, f"{p[key]:g}" if isinstance(p[key], float) else str(p[key])]
    if p.get("ignore_eos"):
        argv.append("--llm-ignore-eos")
    for expr in p.get("slo") or []:
        argv += ["--llm-slo", expr]
    for k, v in (p.get("options") or {}).items():
        opt = "--llm-" + k.replace("_", "-")
        if v is True:
            argv.append(opt)
        elif v is not False:
            argv.append(f"{opt}={v}")  # one token: a value never becomes a positional arg
    argv += list(p.get("locust_args") or [])
    return argv


def needs_shim(spec: ScenarioSpec) -> bool:
    """`requests` and `rate` use locust-plugins' -i/--ips, registered when it is imported."""
    return bool(spec.params.get("requests") or spec.params.get("rate"))


def make_plan_for(spec: ScenarioSpec) -> Any:
    """The backend plan of a scenario."""
    from locust_llm.backends import backend_args, plan_for

    p = spec.params
    serve = list(p.get("serve_args") or [])
    if p["backend"] == "emulator":
        serve += list(p.get("emulator_args") or [])
    return plan_for(
        backend_args(
            p["backend"],
            model=p.get("model"),
            models=p.get("models"),
            tp=p.get("tp"),
            replicas=p.get("replicas"),
            lb=p.get("lb"),
            vllm_cmd=p.get("vllm_cmd"),
            serve_args=serve,
            urls=p.get("urls"),
            baseline=bool(p.get("baseline")),
        )
    )


def is_done(d: Path, spec: ScenarioSpec) -> bool:
    """A finished scenario with the same resolved parameters (so changed flags re-run it)."""
    try:
        if not (d / DONE).is_file() or not (d / "summary.json").is_file():
            return False
        json.loads((d / "summary.json").read_text())
        old = json.loads((d / "scenario.json").read_text())
    except (OSError, ValueError):
        return False
    new = json.loads(json.dumps(spec.to_json(), default=str))
    return {k: v for k, v in old.items() if k != "file"} == {
        k: v for k, v in new.items() if k != "file"
    }


class _Pids:
    """pids.json: every process this scenario started, written as soon as it starts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pids: dict[str, int] = {}

    def add(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        self.path.write_text(json.dumps(self.pids))


def _stop_locust(proc: subprocess.Popen, grace: float = LOCUST_STOP_GRACE) -> None:
    """SIGTERM the Locust process group (Locust quits and writes its files), then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_scenario(
    spec: ScenarioSpec, d: Path, progress: Progress, left: int, warm_stack: Any = None
) -> Outcome:
    """Run one scenario into directory `d` (wiped first). KeyboardInterrupt propagates after
    everything started here is stopped. `warm_stack`: an already running `Stack` to load
    (a search's probes on one warmed stack); it is left running."""
    from locust_llm.backends import Stack
    from locust_llm.backends.process import spawn

    t_start = time.monotonic()
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / "scenario.json").write_text(json.dumps(spec.to_json(), indent=2, default=str) + "\n")
    events = (d / "events.jsonl").open("a")
    pids = _Pids(d / "pids.json")
    backend_log = (d / "backend.log").open("a")

    def blog(msg: str) -> None:
        backend_log.write(msg + "\n")
        backend_log.flush()

    def event(kind: str, detail: str = "", **extra: Any) -> None:
        events.write(json.dumps({"t": time.time(), "kind": kind, "detail": detail, **extra}) + "\n")
        events.flush()

    proc: subprocess.Popen | None = None
    scraper: Scraper | None = None
    stack = None
    try:
        if warm_stack is None:
            progress.line(spec, f"starting backend ({spec.params['backend']})")
            plan = make_plan_for(spec)
            stack = Stack(
                plan,
                run_dir=d / "backend",
                log=blog,
                ready_timeout=float(spec.params.get("ready_timeout") or 900.0),
            )
            stack.start()
            for i, pid in enumerate(stack.pids):
                pids.add(f"backend-{i}", pid)
            progress.line(spec, f"backend up at {stack.url} in {time.monotonic() - t_start:.1f}s")
        live = stack if warm_stack is None else warm_stack
        scraper = Scraper(
            [Target(name=r.name, url=r.metrics_url, model=r.model) for r in live.replicas],
            live.nginx_status_url,
            d / "server_metrics.jsonl",
        ).start()
        shim = None
        if needs_shim(spec):
            shim = d / "_locust_plugins_shim.py"
            shim.write_text("import locust_plugins  # noqa: F401  registers -i/--ips\n")
        argv = locust_argv(spec, live.url, d, shim)
        (d / "locust.cmd").write_text(" ".join(argv) + "\n")
        env = dict(spec.params.get("env") or {})
        proc = spawn(argv, log_path=d / "locust.log", env=env, death_signal=signal.SIGTERM)
        pids.add("locust", proc.pid)
        rt = spec.run_time
        how = f"for {rt:g}s" if rt else f"for {spec.params['requests']} requests"
        progress.line(spec, f"load: {spec.params['users']} users {how}")
        event("load_start", f"{spec.params['users']} users")
        load_t0 = time.monotonic()
        warm = float(spec.params.get("warmup") or 0.0)
        kill = spec.params.get("kill_replica")
        warm_marked = kill_done = False
        deadline = load_t0 + (rt or 0) + 120.0 if rt else None
        while proc.poll() is None:
            now = time.monotonic() - load_t0
            if warm and not warm_marked and now >= warm:
                event("warmup_end", f"{warm:g}s")
                warm_marked = True
            if kill and not kill_done and now >= kill["at"]:
                victim = kill.get("replica") or [r.name for r in live.replicas if r.launched][-1]
                live.kill_replica(victim)
                event("replica_killed", victim)
                progress.line(spec, f"killed replica {victim} at {now:.1f}s")
                kill_done = True
            if deadline and time.monotonic() > deadline:
                progress.line(spec, "Locust did not stop in time; stopping it")
                _stop_locust(proc)
                break
            time.sleep(0.1)
        code = proc.returncode
        event("load_end", f"exit {code}")
    except KeyboardInterrupt:
        _teardown(proc, scraper, stack, progress, spec, interrupted=True)
        events.close()
        backend_log.close()
        raise
    except Exception as e:
        with _HeldSigint(progress, spec):
            _teardown(proc, scraper, stack, progress, spec)
            events.close()
            backend_log.close()
            msg = f"{type(e).__name__}: {e}"
            (d / "error.txt").write_text(msg + "\n")
            progress.line(spec, f"ERROR {msg}", left)
            return Outcome(spec.name, "error", time.monotonic() - t_start, msg)
    with _HeldSigint(progress, spec):  # the load is over: its results are kept whatever comes
        _teardown(proc, scraper, stack, progress, spec)
        events.close()
        backend_log.close()
        return _collect(spec, d, code, time.monotonic() - t_start, progress, left)


class _HeldSigint:
    """Ctrl-C while a scenario whose load is over is torn down and collected: noted, and
    raised as KeyboardInterrupt once its stack is down and its `.done` written (ignoring it
    let the run go on to the next scenarios; raising it at once lost a finished result)."""

    def __init__(self, progress: Progress, spec: ScenarioSpec) -> None:
        self.progress, self.spec, self.hit = progress, spec, False

    def _note(self, signum: int, frame: Any) -> None:
        self.hit = True  # nothing else here: a signal handler must not print mid-print

    def __enter__(self) -> _HeldSigint:
        self.old = signal.signal(signal.SIGINT, self._note)
        return self

    def __exit__(self, *exc: Any) -> None:
        signal.signal(signal.SIGINT, self.old)
        if self.hit and exc[0] is None:
            self.progress.line(self.spec, "interrupted: stopping after this scenario")
            raise KeyboardInterrupt


def _teardown(proc, scraper, stack, progress, spec, interrupted: bool = False) -> None:
    """Stop Locust, the scraper and the stack. After a Ctrl-C further ones are ignored while
    doing so; otherwise the caller holds them (`_HeldSigint`) until the results are kept."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if interrupted else None
    try:
        if interrupted:
            progress.line(spec, "interrupted: stopping Locust and the backend")
        if proc is not None:
            _stop_locust(proc, grace=2.0 if interrupted else LOCUST_STOP_GRACE)
        if scraper is not None:
            scraper.stop()
        if stack is not None:
            stack.stop()
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def _collect(
    spec: ScenarioSpec, d: Path, code: int | None, wall: float, progress: Progress, left: int
) -> Outcome:
    progress.finished(spec, wall, left)
    try:
        summary = json.loads((d / "summary.json").read_text())
    except (OSError, ValueError):
        msg = f"Locust exited {code} without a summary.json (see {d / 'locust.log'})"
        (d / "error.txt").write_text(msg + "\n")
        progress.line(spec, f"ERROR {msg}", left)
        return Outcome(spec.name, "error", wall, msg)
    slo = summary.get("slo") or []
    passed = all(s.get("passed") for s in slo) if slo else None
    (d / DONE).write_text(
        json.dumps(
            {
                "finished_at": time.time(),
                "locust_exit_code": code,
                "slo_passed": passed,
                "wall_s": wall,
            }
        )
        + "\n"
    )
    ttft = summary.get("p50_ttft_ms") or summary.get("median_ttft_ms")
    verdict = "" if passed is None else (" SLO PASS" if passed else " SLO FAIL")
    saturated = bool((summary.get("saturation") or {}).get("detected"))
    if saturated:
        verdict += " SATURATED"
    fails = [s["expr"] for s in slo if not s.get("passed")]
    if summary.get("no_data_reason"):  # zeros would read as a collapse: say why instead
        measured = f"NO DATA: {summary['no_data_reason']}"
    else:
        measured = (
            f"{summary.get('request_throughput') or 0:.2f} req/s, "
            f"{summary.get('output_throughput') or 0:.1f} tok/s, "
            f"TTFT p50 {ttft or 0:.0f} ms, {summary.get('failed', 0)} failed"
        )
    progress.line(
        spec,
        f"done in {wall:.1f}s: {measured}{verdict}" + (f" ({', '.join(fails)})" if fails else ""),
        left,
    )
    return Outcome(
        spec.name,
        "slo_failed" if passed is False else "ok",
        wall,
        slo_passed=passed,
        saturated=saturated,
    )
