"""Bad input is refused with a message naming the problem, never a bare traceback.

End to end through real `locust` processes (the client-side decoding of each failure is unit
tested in tests/client; here: the message reaches the user, the exit code says so, nothing
is started or left behind).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from locust_llm.backends import BackendError, Stack, make_plan

from .conftest import (
    BAD_ANSWERS,
    CHAT,
    EMULATOR,
    FAST_EMU,
    ROOT,
    XSS,
    alive,
    free_port,
    records,
    run_locust,
)

SHORT = [*CHAT, "-u", "2", "-r", "2", "-t", "1s"]
# a run that must produce requests: time for imports and the first connect on busy cores
RUN3 = [*CHAT, "-u", "2", "-r", "2", "-t", "3s"]


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text[-4000:]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--llm-max-tokens", "-1"], "--llm-max-tokens: must be >= 1"),
        (["--llm-max-tokens", "lots"], "--llm-max-tokens: 'lots' is not an integer"),
        (["--llm-lb", "fastest"], "--llm-lb: invalid choice: 'fastest'"),
        (["--llm-backend", "tpu"], "--llm-backend: invalid choice: 'tpu'"),
        (["--llm-slo", "ttft_p95<<3"], "--llm-slo: cannot parse SLO"),
        (["--llm-slo", "latency<=3ms"], "--llm-slo"),
    ],
)
def test_bad_option_values_exit_nonzero_without_traceback(args, needle):
    p = run_locust([*SHORT, "--host", "http://127.0.0.1:9", *args], timeout=30)
    assert p.returncode not in (0, None), p.stderr[-2000:]
    assert needle in p.stderr, p.stderr[-2000:]
    no_traceback(p.stderr + p.stdout)


# these measure what a run does against a failing server, past the pre-flight that would
# otherwise stop it before any user spawns (tests/client/test_preflight.py)
MEASURE_FAILING = ["--llm-skip-preflight"]


@pytest.mark.parametrize("with_model", [True, False])
def test_connection_refused_stops_the_run_in_preflight(tmp_path, with_model):
    """Before any user spawns: one line naming the address, exit 1, no summary of a run
    that never started."""
    port = free_port()
    extra = ["--llm-model", "m"] if with_model else []
    p = run_locust(
        [*RUN3, "--host", f"http://127.0.0.1:{port}", *extra, "--llm-summary", f"{tmp_path}/s.json"]
    )
    out = p.stdout + p.stderr
    assert p.returncode == 1, out[-3000:]
    lines = [ln for ln in out.splitlines() if "pre-flight failed" in ln]
    assert len(lines) == 1, out[-3000:]
    assert f"127.0.0.1:{port}" in lines[0] and "connection refused" in lines[0]
    assert "--llm-skip-preflight" in lines[0]
    assert "connection refused by" in lines[0]  # the same words as a refused request in a run
    assert "Spawning" not in out and "Ramping to" not in out, out[-3000:]
    no_traceback(out)


@pytest.mark.parametrize("with_model", [True, False])
def test_connection_refused_is_named_and_fails_the_run(tmp_path, with_model):
    """With the pre-flight skipped the run measures the dead server: every failure counted
    under its own message."""
    port = free_port()
    extra = ["--llm-model", "m"] if with_model else []
    p = run_locust(
        [*RUN3, *MEASURE_FAILING, "--host", f"http://127.0.0.1:{port}", *extra,
         "--llm-summary", f"{tmp_path}/s.json"]
    )  # fmt: skip
    out = p.stdout + p.stderr
    assert p.returncode == 1, out[-3000:]
    if with_model:
        assert f"connection refused by http://127.0.0.1:{port}: is the server running" in out
    else:  # the /v1/models lookup fails first: a counted failure, not a task traceback
        assert f"connection refused by http://127.0.0.1:{port}/v1/models" in out
        assert "(or pass --llm-model to skip the lookup)" in out
        assert out.count("pass --llm-model") == out.count("to skip the lookup")  # said once
    no_traceback(out)
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["completed"] == 0 and s["failed"] > 0


def test_wrong_scheme_https_to_http_server(emulator):
    url = emulator(*FAST_EMU.split())
    p = run_locust(
        [*RUN3, *MEASURE_FAILING, "--host", url.replace("http://", "https://"), "--llm-model", "m"]
    )
    out = p.stdout + p.stderr
    assert p.returncode == 1
    assert "wrong scheme (http vs https)?" in out, out[-3000:]
    no_traceback(out)
    # the pre-flight, not skipped, stops the run with the same diagnosis
    p = run_locust([*RUN3, "--host", url.replace("http://", "https://"), "--llm-model", "m"])
    out = p.stdout + p.stderr
    assert p.returncode == 1
    (line,) = [ln for ln in out.splitlines() if "pre-flight failed" in ln]
    assert "wrong scheme (http vs https)?" in line, out[-3000:]


def test_non_openai_server_and_http_errors_each_get_a_clear_message(bad_server, tmp_path):
    """One run against a server cycling through 4xx/5xx, HTML 200 and JSON-without-choices:
    every answer is a counted failure with its own message; nothing counts as success."""
    rec, html = tmp_path / "r.jsonl", tmp_path / "locust.html"
    p = run_locust(
        [*CHAT, *MEASURE_FAILING, "-u", "3", "-r", "3", "-t", "3s", "--host", bad_server.url,
         "--llm-model", "m",
         "--llm-records", str(rec), "--llm-summary", str(tmp_path / "s.json"), "--html", str(html)]
    )  # fmt: skip
    out = p.stdout + p.stderr
    assert p.returncode == 1, out[-3000:]
    no_traceback(out)
    for _status, _ctype, _body, needle in BAD_ANSWERS:
        assert needle in out, f"{needle!r} missing from the error report:\n{out[-4000:]}"
    rs = records(rec)
    assert len(rs) >= len(BAD_ANSWERS)
    assert all(r["error"] for r in rs), [r for r in rs if not r["error"]][:3]
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["completed"] == 0 and s["failed"] + s["aborted"] == len(rs)  # nothing lost
    # the <script> in a server's error message is not executable in Locust's HTML report
    assert XSS not in html.read_text()


def test_non_openai_models_endpoint_is_a_counted_failure(bad_server):
    """Without --llm-model the model lookup hits an HTML page: say so, count it."""
    p = run_locust([*RUN3, *MEASURE_FAILING, "--host", bad_server.url])
    out = p.stdout + p.stderr
    assert p.returncode == 1
    assert "not an OpenAI model list" in out, out[-3000:]
    assert "(or pass --llm-model to skip the lookup)" in out
    no_traceback(out)


def test_non_openai_server_stops_the_run_in_preflight(bad_server):
    p = run_locust([*RUN3, "--host", bad_server.url])
    out = p.stdout + p.stderr
    assert p.returncode == 1
    (line,) = [ln for ln in out.splitlines() if "pre-flight failed" in ln]
    assert bad_server.url in line, out[-3000:]
    no_traceback(out)


def test_emulator_port_already_taken():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = subprocess.run(
            [*EMULATOR, "m", "--port", str(port)], capture_output=True, text=True, timeout=30
        )
    assert p.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in p.stderr
    no_traceback(p.stderr)


def test_nginx_port_already_taken(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        plan = make_plan("emulator", "m", replicas=2, vllm_cmd=EMULATOR, nginx_port=port)
        with pytest.raises(BackendError, match=f"nginx port {port} .* already in use"):
            Stack(plan, run_dir=tmp_path, log=lambda s: None).start()
    assert not any(r.pid and alive(r.pid) for r in plan.replicas)  # preflight: nothing started


def test_missing_nginx_is_clear(tmp_path):
    p = run_locust(
        [*SHORT, "--llm-backend", "emulator", "--llm-replicas", "2", "--llm-run-dir",
         str(tmp_path / "run")],
        env={"LOCUST_LLM_NGINX": str(tmp_path / "no-nginx-here")},
    )  # fmt: skip
    assert p.returncode == 1
    assert "is not an executable file" in p.stderr and "nginx" in p.stderr, p.stderr[-2000:]
    no_traceback(p.stderr + p.stdout)


def test_missing_nginx_everywhere_names_the_install_command(monkeypatch, tmp_path):
    from locust_llm.backends import nginx

    monkeypatch.delenv("LOCUST_LLM_NGINX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(nginx, "_SEARCH", ())
    with pytest.raises(BackendError, match="nginx not found") as e:
        nginx.find_nginx()
    assert "install" in str(e.value).lower()


def test_missing_numactl_is_clear(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    p = run_locust(
        [*SHORT, "--llm-backend", "cpu", "--llm-model", "m", "--llm-vllm-cmd",
         f"{sys.executable} -m locust_llm.emulator"],
        env={"PATH": str(empty)},
    )  # fmt: skip
    assert p.returncode == 1
    assert "numactl is required" in p.stderr and "apt-get install numactl" in p.stderr
    no_traceback(p.stderr + p.stdout)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this host has nvidia-smi")
def test_missing_nvidia_smi_is_clear():
    p = run_locust([*SHORT, "--llm-backend", "gpu", "--llm-model", "m"])
    assert p.returncode == 1
    assert "no GPUs found" in p.stderr and "nvidia-smi" in p.stderr
    no_traceback(p.stderr + p.stdout)


def test_replica_never_healthy_shows_its_log_and_is_stopped(tmp_path):
    plan = make_plan("emulator", "m", vllm_cmd=EMULATOR, serve_args=["--emu-startup-delay", "1000"])
    st = Stack(plan, run_dir=tmp_path, ready_timeout=2.0, log=lambda s: None)
    with pytest.raises(BackendError) as e:
        st.start()
    msg = str(e.value)
    assert "not healthy after 2s" in msg and "last 20 lines of" in msg
    assert "serving m on http://127.0.0.1" in msg  # the replica's own log lines are quoted
    assert not alive(plan.replicas[0].pid)


def test_broken_scenario_toml_is_clear(tmp_path):
    pytest.importorskip("locust_llm.scenarios.spec")
    cases = {
        "syntax.toml": ("[[scenario]]\nname = 'a'\nusers = [1, 2\n", "invalid TOML"),
        "badkey.toml": ("[[scenario]]\nname = 'a'\nbackend = 'tpu'\n", "backend"),
    }
    for name, (text, needle) in cases.items():
        f = tmp_path / name
        f.write_text(textwrap.dedent(text))
        p = subprocess.run(
            [sys.executable, "-m", "locust_llm.cli", "run", str(f)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        out = p.stdout + p.stderr
        assert p.returncode not in (0, None), out[-2000:]
        assert name in out and needle in out, out[-2000:]
        no_traceback(out)


# ---- disk full ---------------------------------------------------------------------------
@pytest.fixture
def tiny_disk(tmp_path) -> Path:
    d = tmp_path / "tiny"
    d.mkdir()
    p = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], capture_output=True
    )
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {p.stderr.decode(errors='replace').strip()}")
    yield d
    subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_disk_full_keeps_whole_records_and_says_so(tiny_disk):
    rec, summ = tiny_disk / "r.jsonl", tiny_disk / "s.json"
    p = run_locust(
        [*CHAT, "-u", "8", "-r", "8", "-t", "3s", "--llm-max-tokens", "64",
         "--llm-serve-args", "--emu-ttft-ms 1 --emu-itl-ms 1",
         "--llm-records", str(rec), "--llm-summary", str(summ)]
    )  # fmt: skip
    out = p.stdout + p.stderr
    no_traceback(out)
    assert f"cannot write --llm-records {rec}" in out, out[-3000:]
    assert "No space left on device" in out or "disk full" in out
    assert p.returncode == 1  # an artifact the user asked for is incomplete
    rs = records(rec)  # every line that is there parses; no torn last line
    assert len(rs) > 5
    if not summ.exists():
        assert f"cannot write --llm-summary {summ}" in out
    assert not Path(f"{summ}.tmp").exists()
    assert "Successful requests:" in out  # the summary still reaches the console


def test_a_bad_slo_with_the_web_ui_is_one_clean_line():
    port = free_port()
    p = run_locust(
        ["-f", "locustfiles/chat.py", "--web-port", str(port), "--web-host", "127.0.0.1",
         "--host", "http://127.0.0.1:1", "--llm-slo", "bogus<=3"],
        timeout=30,
    )  # fmt: skip
    out = p.stdout + p.stderr
    assert p.returncode == 2, out[-2000:]
    assert "locust-llm: --llm-slo:" in out
    assert "Uncaught exception" not in out and "Traceback" not in out, out[-3000:]
