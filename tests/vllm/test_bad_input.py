"""Bad input with the real launcher: each failure a one-line cause and remedy, nothing left running.

Runs before the session server starts (file order), and each test is cheap: failures caught
before vLLM is spawned, or a vLLM stopped during its imports.
"""

from __future__ import annotations

import socket
import time

import pytest

from locust_llm.backends import BackendError, Stack
from locust_llm.backends import stack as stack_mod
from tests.runs import alive

from .conftest import SERVE_ARGS, cpu_plan, require_vllm


def group_alive(pgid: int) -> bool:
    """Any process left in the replica's process group (vLLM's engine core and workers)."""
    import os

    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def test_never_healthy_shows_the_log_tail_and_leaves_nothing(tmp_path):
    require_vllm()
    # compiled (not eager): long enough for vLLM to log its first lines (imports take ~10 s
    # on 2 cores), far too short to load the model and compile it
    plan = cpu_plan(serve_args=[a for a in SERVE_ARGS if a != "--enforce-eager"])
    stack = Stack(plan, tmp_path / "run", ready_timeout=25, log=lambda m: None)
    t0 = time.monotonic()
    with pytest.raises(BackendError) as e:
        stack.start()
    first, *rest = str(e.value).splitlines()
    assert "not healthy after 25s" in first and "raise ready_timeout" in first
    log = (tmp_path / "run" / f"replica-{plan.replicas[0].name}.log").read_text()
    assert rest and rest[-1].strip() in log  # the last log lines, verbatim
    pid = plan.replicas[0].pid
    assert not alive(pid) and not group_alive(pid), "vLLM left running after a failed start"
    assert time.monotonic() - t0 < 90


def test_port_taken_before_start_spawns_nothing(tmp_path):
    require_vllm()
    plan = cpu_plan()
    r = plan.replicas[0]
    with socket.socket() as held:
        held.bind((r.host, r.port))
        held.listen()
        with pytest.raises(BackendError) as e:
            Stack(plan, tmp_path / "run", log=lambda m: None).start()
    msg = str(e.value)
    assert "\n" not in msg and f"port {r.port}" in msg and "already in use" in msg
    assert "ss -ltnp" in msg
    assert r.pid is None and not list((tmp_path / "run").glob("replica-*.log"))


def test_port_taken_after_the_check_is_read_from_vllms_own_error(tmp_path, monkeypatch):
    """Another process takes the port between the check and vLLM's bind: vLLM exits with
    EADDRINUSE, and the cause comes first, out of its traceback."""
    require_vllm()
    monkeypatch.setattr(stack_mod, "port_in_use", lambda host, port: False)
    plan = cpu_plan()
    r = plan.replicas[0]
    with socket.socket() as held:
        held.bind((r.host, r.port))
        held.listen()
        with pytest.raises(BackendError) as e:
            Stack(plan, tmp_path / "run", ready_timeout=200, log=lambda m: None).start()
    first = str(e.value).splitlines()[0]
    assert f"replica {r.name} exited with code" in first
    assert "its port is already in use: stop what holds it" in first
    assert not group_alive(r.pid)


def weights_without_config(d):
    (d / "weights").mkdir()
    (d / "weights" / "model.safetensors").write_bytes(b"0")
    return d / "weights"


@pytest.mark.parametrize(
    "make, expect",
    [
        (lambda d: d / "absent", "does not exist: build the tiny model with `make setup`"),
        (
            weights_without_config,
            "is not a model folder (no config.json): pass a folder written by save_pretrained",
        ),
    ],
)
def test_model_folder_missing_or_not_a_model_with_the_real_launcher(tmp_path, make, expect):
    require_vllm()
    model = make(tmp_path)
    plan = cpu_plan(model=str(model), models=[{"name": "tiny", "model": str(model)}])
    assert "vllm_main.py" in plan.commands()[0] or "vllm serve" in plan.commands()[0]
    with pytest.raises(BackendError) as e:
        Stack(plan, tmp_path / "run", log=lambda m: None).start()
    msg = str(e.value)
    assert expect in msg and "\n" not in msg
    assert plan.replicas[0].pid is None
