"""Command lines and environments for `vllm serve` (and the emulator, which takes the same flags).

Pure functions: the same argv is what the stack launches and what `locust-llm plan` prints, so
a user can paste the printed commands into a shell and get the exact deployment that was
measured. Flags are only those real `vllm serve` accepts (vLLM 0.33).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, Sequence

VLLM_SERVE = ["vllm", "serve"]
SECRET_FLAGS = ("--api-key",)
SECRET_ENV = ("VLLM_API_KEY", "HF_TOKEN", "OPENAI_API_KEY")
MASK = "***"


def emulator_cmd() -> list[str]:
    """The emulator, run by this interpreter so it sees the same installed package."""
    return [sys.executable, "-m", "locust_llm.emulator"]


def split_cmd(cmd: str | Sequence[str] | None, default: list[str]) -> list[str]:
    """`"vllm serve"` or `["vllm", "serve"]` -> argv prefix; None -> default."""
    if cmd is None:
        return list(default)
    if isinstance(cmd, str):
        return shlex.split(cmd)
    return list(cmd)


def is_emulator(executable: Sequence[str]) -> bool:
    joined = " ".join(executable)
    return (
        "locust_llm.emulator" in joined
        or "locust-llm-emulator" in joined
        or ("locust-llm" in joined and "emulate" in joined)
    )


def serve_args(
    model: str,
    *,
    host: str,
    port: int,
    served_model_name: str,
    tp: int | None = None,
    dtype: str | None = None,
    gpu_memory_utilization: float | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The arguments after the executable: `MODEL --host H --port P --served-model-name N ...`."""
    args = [model, "--host", host, "--port", str(port), "--served-model-name", served_model_name]
    if tp is not None:  # None: leave vLLM's default (1)
        args += ["--tensor-parallel-size", str(tp)]
    if dtype:
        args += ["--dtype", dtype]
    if gpu_memory_utilization is not None:
        args += ["--gpu-memory-utilization", f"{gpu_memory_utilization:g}"]
    # usage.prompt_tokens_details.cached_tokens: the client's prefix-cache hit share needs it,
    # and vLLM sends it only when asked (``--no-enable-prompt-tokens-details`` turns it off)
    if not any(a.split("=")[0].endswith("enable-prompt-tokens-details") for a in extra):
        args.append("--enable-prompt-tokens-details")
    return args + list(extra)


def mask_argv(argv: Sequence[str]) -> list[str]:
    """Replace the value after every secret flag (and `--api-key=...`) with `***`."""
    out: list[str] = []
    hide_next = False
    for a in argv:
        if hide_next:
            out.append(MASK)
            hide_next = False
        elif a in SECRET_FLAGS:
            out.append(a)
            hide_next = True
        elif any(a.startswith(f + "=") for f in SECRET_FLAGS):
            out.append(a.split("=", 1)[0] + "=" + MASK)
        else:
            out.append(a)
    return out


def shell_line(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """`ENV=v ... argv` quoted for a POSIX shell, secrets masked."""
    env = env or {}
    parts = [f"{k}={shlex.quote(MASK if k in SECRET_ENV else v)}" for k, v in sorted(env.items())]
    return " ".join([*parts, shlex.join(mask_argv(argv))])
