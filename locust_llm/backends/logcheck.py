"""Why a replica died before it was ready, in one line, read from the end of its log.

vLLM's own tracebacks run to hundreds of lines; the user needs the cause and the remedy first.
Pure: the log tail and exit code in, a sentence (or None when nothing is recognised) out.
"""

from __future__ import annotations

import signal

_OOM = (
    "out of memory",
    "outofmemoryerror",
    "cannot allocate memory",
    "memoryerror",
    "not enough memory",
    "insufficient memory",
    "std::bad_alloc",
)
_PORT = ("address already in use", "errno 98")


def start_failure(log_tail: str, returncode: int | None) -> str | None:
    """A one-line cause and what to do, for the failures a user can fix."""
    low = log_tail.lower()
    if returncode == -signal.SIGKILL or returncode == 128 + signal.SIGKILL:
        return (
            "killed by SIGKILL, most likely the kernel's OOM killer (see `dmesg`): lower "
            "VLLM_CPU_KVCACHE_SPACE (--kvcache-gib), --max-model-len or --max-num-seqs"
        )
    if any(k in low for k in _OOM):
        return (
            "out of memory at start: lower VLLM_CPU_KVCACHE_SPACE (--kvcache-gib) on CPU or "
            "--gpu-memory-utilization on GPU, or --max-model-len / --max-num-seqs"
        )
    if any(k in low for k in _PORT):
        return "its port is already in use: stop what holds it or plan again for free ports"
    if "couldn't connect to 'https://huggingface.co'" in low or (
        "offline mode" in low and "cached files" in low
    ):
        return (
            "the model is not a local folder and the Hugging Face hub cannot be reached (nor "
            "is it in the hub cache): pass the path of a model folder, or download it first"
        )
    if "does not appear to have a file named config.json" in low or "no config.json" in low:
        return "the model folder has no config.json: pass a folder written by save_pretrained"
    return None
