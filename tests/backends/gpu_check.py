"""GPU plan check on a real GPU host: tp=1 and tp=2 plans launched with the emulator.

Each replica must report, through the emulator's `/emulator/info`, exactly the
`CUDA_VISIBLE_DEVICES` group and tp the plan gave it. Used by `test_gpu_device.py` and runnable
alone on a bare GPU machine (`python3 tests/backends/gpu_check.py [OUT_DIR]`): with
`DEVICE_WHEELS=dir` it unpacks gevent/orjson/prometheus_client wheels from `dir` first, for
machines without a package index. Prints one JSON document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bootstrap_wheels() -> None:
    wheels = os.environ.get("DEVICE_WHEELS")
    try:
        import gevent  # noqa: F401
        import orjson  # noqa: F401
        import prometheus_client  # noqa: F401

        return
    except ImportError:
        if not wheels:
            raise
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    dest = Path(tempfile.mkdtemp(prefix="wheels-"))
    for w in sorted(Path(wheels).glob("*.whl")):
        if f"-{tag}-" in w.name or "-py3-none-any" in w.name:
            zipfile.ZipFile(w).extractall(dest)
    sys.path.insert(0, str(dest))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(dest), str(ROOT)])


def run(out_dir: Path | None = None) -> dict:
    _bootstrap_wheels()
    sys.path.insert(0, str(ROOT))
    from locust_llm.backends import Stack, Topology, make_plan
    from locust_llm.backends.errors import BackendError
    from locust_llm.backends.gpu import QUERY_GPU_ARGS, read_gpu_topology
    from locust_llm.backends.nginx import find_nginx

    topo = read_gpu_topology()
    result: dict = {
        "gpus": [g.__dict__ for g in topo.gpus],
        "links": {f"{a}-{b}": c for (a, b), c in sorted(topo.links.items()) if a < b},
        "runs": [],
    }
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        smi = "nvidia-smi"
        for name, argv in [
            ("query-gpu.csv", [smi, *QUERY_GPU_ARGS]),
            ("topo-m.txt", [smi, "topo", "-m"]),
        ]:
            (out_dir / name).write_text(subprocess.run(argv, capture_output=True, text=True).stdout)
    try:
        find_nginx()
        have_nginx = True
    except BackendError:
        have_nginx = False
    result["nginx"] = have_nginx
    emu = [sys.executable, "-m", "locust_llm.emulator"]
    for tp in (1, 2):
        if len(topo.gpus) < tp:
            continue
        plan = make_plan("gpu", "m", tp=tp, vllm_cmd=emu, topology=Topology(gpu=topo),
                         serve_args=["--emu-profile", "constant"],
                         use_nginx=None if have_nginx else False)  # fmt: skip
        run_dir = Path(tempfile.mkdtemp(prefix=f"gpu-tp{tp}-"))
        t0 = time.monotonic()
        entry = {"tp": tp, "plan": plan.describe(), "replicas": []}
        with Stack(plan, run_dir=run_dir, ready_timeout=120, log=lambda s: None) as st:
            entry["ready_s"] = round(time.monotonic() - t0, 2)
            entry["url"] = st.url
            for r in st.replicas:
                with urllib.request.urlopen(r.url + "/emulator/info", timeout=10) as resp:
                    info = json.loads(resp.read())
                entry["replicas"].append({
                    "name": r.name, "planned_gpus": r.gpus, "pid": r.pid,
                    "reported_cuda_visible_devices": info["env"]["CUDA_VISIBLE_DEVICES"],
                    "reported_tp": info["tp"],
                    "ok": info["env"]["CUDA_VISIBLE_DEVICES"] == ",".join(map(str, r.gpus))
                    and info["tp"] == tp,
                })  # fmt: skip
            pids = st.pids
        entry["left_running"] = [p for p in pids if Path(f"/proc/{p}").exists()]
        result["runs"].append(entry)
    result["ok"] = (
        bool(result["runs"])
        and all(r["ok"] for run in result["runs"] for r in run["replicas"])
        and not any(run["left_running"] for run in result["runs"])
    )
    if out_dir:
        (out_dir / "gpu_check.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    res = run(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(json.dumps(res, indent=2))
    sys.exit(0 if res["ok"] else 1)
