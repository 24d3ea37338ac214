"""API keys never leak into what we write or print; everything we start binds 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from locust_llm.backends import BackendError
from locust_llm.backends.nginx import find_nginx

from .conftest import CHAT, ROOT, free_port, stack_children, wait_gone

EMU = "--emu-ttft-ms 5 --emu-itl-ms 5 --emu-eos-prob 0"


def grep_tree(root: Path, secret: str) -> list[str]:
    hits = []
    for f in root.rglob("*"):
        if f.is_file() and secret.encode() in f.read_bytes():
            hits.append(str(f))
    return hits


def listening(pids: list[int]) -> list[tuple[int, str, int]]:
    out = []
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="inet")
        except psutil.Error:
            continue
        out += [(pid, c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return out


def test_api_key_flag_never_written_and_stack_binds_loopback(locust_bg, tmp_path):
    try:
        find_nginx()
    except BackendError:
        pytest.skip("nginx not installed")
    key = "sk-LEAKCHECK-0123456789abcdef"
    art = tmp_path / "artifacts"
    art.mkdir()
    p = locust_bg(
        [*CHAT, "-u", "4", "-r", "4", "-t", "4s", "--llm-backend", "emulator",
         "--llm-replicas", "2", "--llm-serve-args", EMU, "--llm-api-key", key,
         "--llm-run-dir", str(art / "run"), "--llm-records", str(art / "r.jsonl"),
         "--llm-summary", str(art / "s.json"), "--csv", str(art / "locust"),
         "--html", str(art / "report.html"), "--logfile", str(art / "locust.log"),
         "--loglevel", "DEBUG"],
        sub="bg",
    )  # fmt: skip
    p.wait_for(r"started the built-in vLLM emulator \(2 replicas")
    kids = stack_children(p.pid)
    pids = p.remember()
    socks = listening([p.pid, *pids])
    assert len({port for _, _, port in socks}) >= 3, socks  # 2 replicas + nginx
    assert all(ip == "127.0.0.1" for _, ip, _ in socks), socks
    for c in kids["emulator"] + kids["nginx"]:  # `ps` shows argv to every user
        assert key not in " ".join(c.cmdline())
    rc = p.wait(60)
    assert rc == 0, p.text()[-3000:]
    s = json.loads((art / "s.json").read_text())
    assert s["completed"] > 0 and s["failed"] == 0  # the replicas required the key: it was sent
    assert list((art / "run").glob("replica-*.log")) and (art / "run" / "access.log").exists()
    assert (art / "report.html").exists() and (art / "locust_stats.csv").exists()
    assert grep_tree(art, key) == [] and grep_tree(tmp_path / "bg", key) == []
    assert key not in p.text()
    assert wait_gone(pids) == []


def test_openai_api_key_env_never_written(tmp_path, emulator):
    key = "sk-ENVLEAK-fedcba9876543210"
    p = subprocess.run(
        [sys.executable, "-m", "locust", *CHAT, "-u", "2", "-r", "2", "-t", "3s",
         "--llm-serve-args", EMU, "--llm-run-dir", str(tmp_path / "run"),
         "--llm-records", str(tmp_path / "r.jsonl"), "--llm-summary", str(tmp_path / "s.json"),
         "--csv", str(tmp_path / "locust"), "--loglevel", "DEBUG"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**__import__("os").environ, "OPENAI_API_KEY": key},
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads((tmp_path / "s.json").read_text())["completed"] > 0
    assert key not in p.stdout + p.stderr
    assert grep_tree(tmp_path, key) == []
    # and the key really is enforced by the replica it started: a wrong key is a clear 401
    url = emulator("--api-key", key)
    req = urllib.request.Request(url + "/v1/models", headers={"Authorization": "Bearer wrong"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401


def test_plan_output_masks_the_key():
    key = "sk-PLANLEAK-42"
    for extra in ([], ["--json"]):
        p = subprocess.run(
            [sys.executable, "-m", "locust_llm.cli", "plan", "--backend", "emulator",
             "--model", "m", "--replicas", "2", "--api-key", key, "--dry-run", *extra],
            cwd=ROOT, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        assert key not in p.stdout + p.stderr and "***" in p.stdout


def test_web_ui_does_not_show_the_key(tmp_path, emulator):
    """Locust renders a secret option's value into the page source: the key must not be one."""
    key = "sk-WEBLEAK-77"
    url = emulator(*EMU.split())
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", "locustfiles/chat.py", "--host", url,
         "--llm-model", "m", "--llm-api-key", key, "--web-host", "127.0.0.1",
         "--web-port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        page = None
        deadline = time.monotonic() + 30
        while page is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    page = r.read().decode()
            except OSError:
                time.sleep(0.2)
        assert page is not None, "web UI did not come up"
        assert "llm_max_tokens" in page  # our options are in the page...
        assert key not in page  # ...the key is not (Locust would put a secret's value there)
    finally:
        proc.kill()
        proc.wait()
    assert wait_gone([proc.pid]) == []
