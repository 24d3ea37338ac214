"""Running Locust against the real vLLM server and reading what it wrote."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCUST = [sys.executable, "-m", "locust"]


def locust(args: list[str], timeout: float = 120, env: dict | None = None, **kw):
    return subprocess.run(
        LOCUST + args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        **kw,
    )


def records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def failures(prefix: Path) -> list[dict]:
    with open(f"{prefix}_failures.csv") as f:
        return list(csv.DictReader(f))


def vllm_python(code: str, stdin: str | None = None) -> str:
    """Run `code` with the vLLM venv's interpreter (it has transformers and vLLM)."""
    from locust_llm.backends import install

    found = install.find_vllm()
    out = subprocess.run(
        [found.python, "-c", code],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout
