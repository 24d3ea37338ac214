"""``locust -f LOCUSTFILE --help`` lists the ``--llm-*`` options.

Run for real: a throwaway venv whose site-packages holds the package's ``.pth`` hook (as an
install puts it there) and sees the project's venv and this checkout; its ``locust`` script is
the same console script pip writes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _venv_with_hook(tmp: Path, hook: bool) -> Path:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "deps.pth").write_text(f"{ROOT}\n{sysconfig.get_paths()['purelib']}\n")
    if hook:
        shutil.copy(ROOT / "locust_llm-help.pth", site)
    script = venv / "bin" / "locust"
    script.write_text(
        f"#!{venv}/bin/python\nimport sys\nfrom locust.main import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    return script


def _help(tmp: Path, locustfile: str, hook: bool = True) -> str:
    locust = _venv_with_hook(tmp, hook)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [str(locust), "-f", str(ROOT / "locustfiles" / locustfile), "--help"],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_help_lists_llm_options(tmp_path) -> None:
    text = _help(tmp_path, "chat.py")
    for flag in ("--llm-model", "--llm-slo", "--llm-skip-preflight", "--llm-dataset", "--llm-rate"):
        assert flag in text, flag
    assert "error_rate<=1%," in text and "%%" not in text


def test_without_the_hook_locust_help_has_none(tmp_path) -> None:
    # what a user saw before: Locust prints --help before importing the locustfile
    assert "--llm-model" not in _help(tmp_path, "chat.py", hook=False)
