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
import zipfile
from pathlib import Path

import pytest

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


def _bare_venv(tmp: Path) -> Path:
    """A venv that already has the dependencies (the project's, through a .pth) and was
    "installed" (setup.sh's stamp), as after `pip install -e '.[test]'`: setup.sh then only
    runs its checks and the hook step."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "deps.pth").write_text(f"{ROOT}\n{sysconfig.get_paths()['purelib']}\n")
    (venv / ".installed").touch()
    return venv


def test_setup_sh_gives_an_editable_venv_the_help_hook(tmp_path) -> None:
    venv = _bare_venv(tmp_path)
    site = next(venv.glob("lib/python*/site-packages"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for _ in range(2):  # idempotent: the second run finds it in place
        out = subprocess.run(
            ["bash", str(ROOT / "scripts" / "setup.sh")],
            env={**env, "VENV": str(venv)}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert (site / "locust_llm-help.pth").read_bytes() == (
            ROOT / "locust_llm-help.pth"
        ).read_bytes()
    script = venv / "bin" / "locust"
    script.write_text(
        f"#!{venv}/bin/python\nimport sys\nfrom locust.main import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    text = subprocess.run(
        [str(script), "-f", str(ROOT / "locustfiles" / "chat.py"), "--help"],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    ).stdout  # fmt: skip
    assert "--llm-model" in text and "--llm-slo" in text


def test_a_wheel_carries_the_help_hook(tmp_path) -> None:
    # built from a copy of the tracked files: a build in the checkout would leave build/ there
    src = tmp_path / "src"
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, src / name)
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    if out.returncode != 0 and "No matching distribution" in out.stderr:
        pytest.skip("no setuptools/wheel for pip's isolated build on this machine")
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("locust_llm-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert "locust_llm-help.pth" in names  # at the wheel's root: site-packages on install


def test_the_projects_own_venv_lists_the_options() -> None:
    # the venv these tests run in, as scripts/setup.sh (the README's setup) left it
    if sys.prefix == sys.base_prefix or not (Path(sys.prefix) / ".installed").exists():
        pytest.skip("not running in a venv made by scripts/setup.sh")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [str(Path(sys.prefix) / "bin" / "locust"), "-f", str(ROOT / "locustfiles" / "chat.py"),
         "--help"],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "--llm-model" in out.stdout, "re-run scripts/setup.sh: the --help hook is missing"
