"""Running Locust against the real vLLM server and reading what it wrote."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

from tests.runs import LOCUST, ROOT, records, run_locust

__all__ = ["LOCUST", "ROOT", "failures", "locust", "records", "vllm_python"]


def locust(args: list[str], timeout: float = 120, env: dict | None = None, **kw):
    return run_locust(args, timeout=timeout, env=env, **kw)


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
