"""Command line of the emulator: `vllm serve`'s flags with vLLM's spelling rules, plus `--emu-*`.

A backend plan builds a real `vllm serve` command line; swapping the executable for
`python -m locust_llm.emulator` must just work. So: dashes and underscores are interchangeable
in flag names, `--enable-X/--no-enable-X` pairs work, `-tp/-pp/-dp` are aliases, and every vLLM
flag we do not model is accepted (with or without a value) and reported in ONE warning line.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field

from .profiles import Profile, get_profile

DEFAULT_MODEL = "locust-llm/emulator"

_SHORT_ALIASES = {
    "-tp": "--tensor-parallel-size",
    "-pp": "--pipeline-parallel-size",
    "-dp": "--data-parallel-size",
}
# vLLM flags that take no value: an unknown flag from this list never swallows the next token.
_VLLM_BOOLEAN_FLAGS = {
    "trust-remote-code",
    "enforce-eager",
    "disable-log-requests",
    "disable-log-stats",
    "enable-log-requests",
    "enable-chunked-prefill",
    "no-enable-chunked-prefill",
    "enable-server-load-tracking",
    "enable-auto-tool-choice",
    "disable-frontend-multiprocessing",
    "disable-custom-all-reduce",
    "enable-lora",
    "enable-sleep-mode",
    "enable-force-include-usage",
    "disable-uvicorn-access-log",
    "disable-fastapi-docs",
    "headless",
    "async-scheduling",
    "enable-expert-parallel",
    "skip-tokenizer-init",
    "return-tokens-as-token-ids",
}
FAULT_TYPES = ("429", "500", "503", "400", "midstream", "truncate", "reset", "dead")


def _int_with_suffix(text: str) -> int:
    """vLLM accepts `--max-model-len 32k` / `1M` (k = 1000, K = 1024)."""
    t = text.strip()
    mult = {"k": 1000, "K": 1024, "m": 1000**2, "M": 1024**2}.get(t[-1:], 1)
    if mult != 1:
        t = t[:-1]
    return int(float(t) * mult)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for the flags the emulator models (vLLM's and `--emu-*`)."""
    p = argparse.ArgumentParser(
        prog="python -m locust_llm.emulator",
        description="vLLM-compatible emulator: OpenAI chat/completions streaming with a "
        "continuous-batching engine model, vLLM's /metrics, faults.",
    )
    p.add_argument(
        "model_tag", nargs="?", default=None, metavar="MODEL", help=f"default {DEFAULT_MODEL}"
    )
    v = p.add_argument_group("vllm serve flags (modelled)")
    v.add_argument("--model", dest="model_flag", default=None)
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=8000, help="0 = a free port (see the ready line)")
    v.add_argument("--served-model-name", nargs="+", default=None)
    v.add_argument("--tensor-parallel-size", type=int, default=None)
    v.add_argument("--pipeline-parallel-size", type=int, default=1)
    v.add_argument("--data-parallel-size", type=int, default=1)
    v.add_argument("--max-num-seqs", type=int, default=None)
    v.add_argument("--max-model-len", type=_int_with_suffix, default=None)
    v.add_argument("--max-num-batched-tokens", type=_int_with_suffix, default=None)
    v.add_argument("--gpu-memory-utilization", type=float, default=0.92)
    v.add_argument("--dtype", default="auto")
    v.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=True)
    v.add_argument("--api-key", default=None)
    v.add_argument("--max-num-queued-reqs", type=int, default=None)
    v.add_argument(
        "--enable-prompt-tokens-details",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="usage.prompt_tokens_details (cached_tokens) in responses, as vLLM",
    )
    v.add_argument(
        "--block-size",
        type=int,
        default=16,
        help="KV/prefix-cache block in tokens; 16 as vLLM on GPUs (vLLM's CPU build uses 128)",
    )
    v.add_argument("--num-gpu-blocks-override", type=int, default=None)
    v.add_argument("--seed", type=int, default=None, help="vLLM's seed; --emu-seed wins if given")
    v.add_argument("--runner", choices=("auto", "generate", "pooling", "draft"), default="auto")
    v.add_argument("--convert", choices=("auto", "none", "embed", "classify"), default="auto")
    e = p.add_argument_group("emulator knobs")
    e.add_argument("--emu-profile", default="constant", help="constant | llama-3.1-8b-h100 | ...")
    e.add_argument("--emu-ttft-ms", type=float, default=50.0, help="constant profile: TTFT")
    e.add_argument("--emu-itl-ms", type=float, default=20.0, help="constant profile: ITL")
    e.add_argument("--emu-itl-dist", choices=("fixed", "lognormal"), default="fixed")
    e.add_argument(
        "--emu-itl-cv", type=float, default=0.3, help="lognormal ITL coefficient of variation"
    )
    e.add_argument("--emu-time-scale", type=float, default=1.0, help="multiply profile step times")
    e.add_argument("--emu-seed", type=int, default=None, help="seed for text, EOS, jitter, faults")
    e.add_argument(
        "--emu-eos-prob",
        type=float,
        default=0.0,
        help="per-token EOS probability (not with ignore_eos; never before min_tokens); "
        "0 = max_tokens is always reached",
    )
    e.add_argument(
        "--emu-natural-len",
        type=int,
        default=256,
        help="tokens a request WITHOUT max_tokens generates before a natural EOS",
    )
    e.add_argument("--emu-fault-rate", type=float, default=0.0)
    e.add_argument("--emu-fault-types", default="429,500,503,400,midstream,truncate,reset")
    e.add_argument("--emu-startup-delay", type=float, default=0.0, help="seconds /health says 503")
    e.add_argument("--emu-crash-after", type=int, default=0, help="os._exit after N requests")
    e.add_argument("--emu-truth-log", default=None, help="JSONL of per-token write times")
    e.add_argument(
        "--emu-write-bytes", type=int, default=65536, help="max bytes per send when behind"
    )
    e.add_argument("--emu-embed-dim", type=int, default=256, help="pooling: embedding size")
    e.add_argument(
        "--emu-timeout-keep-alive",
        type=float,
        default=float(os.environ.get("VLLM_HTTP_TIMEOUT_KEEP_ALIVE") or 5),
        help="close a keep-alive connection idle this many seconds, as vLLM's uvicorn "
        "(timeout_keep_alive; default $VLLM_HTTP_TIMEOUT_KEEP_ALIVE or 5); 0 = never",
    )
    e.add_argument(
        "--emu-log-level", default="warning", choices=("debug", "info", "warning", "error")
    )
    return p


@dataclass
class Config:
    """Effective settings after defaults from the profile were applied."""

    model: str
    served_model_names: list[str]
    host: str
    port: int
    tp: int
    pp: int
    dp: int
    max_num_seqs: int
    max_model_len: int
    max_num_batched_tokens: int
    gpu_memory_utilization: float
    dtype: str
    enable_prefix_caching: bool
    enable_prompt_tokens_details: bool
    api_key: str | None
    max_num_queued_reqs: int | None
    block_size: int
    num_gpu_blocks_override: int | None
    profile: Profile
    ttft_s: float
    itl_s: float
    itl_dist: str
    itl_cv: float
    time_scale: float
    seed: int
    eos_prob: float
    natural_len: int
    fault_rate: float
    fault_types: list[str]
    startup_delay: float
    crash_after: int
    truth_log: str | None
    write_bytes: int
    log_level: str
    ignored_flags: list[str] = field(default_factory=list)
    runner: str = "auto"
    convert: str = "auto"
    embed_dim: int = 256
    timeout_keep_alive: float = 5.0

    def as_dict(self) -> dict:
        """JSON-able view for /version and /emulator/info."""
        d = {k: v for k, v in self.__dict__.items() if k != "profile"}
        d["profile"] = self.profile.name
        if d.get("api_key"):
            d["api_key"] = "<redacted>"
        return d


def split_argv(argv: list[str], parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """Normalise spelling and separate the flags we model from the vLLM flags we ignore."""
    known = set()
    for action in parser._actions:  # argparse has no public accessor for option strings
        for opt in action.option_strings:
            known.add(opt)
    out: list[str] = []
    ignored: list[str] = []
    i = 0
    while i < len(argv):
        a = _SHORT_ALIASES.get(argv[i], argv[i])
        if a.startswith("--") and len(a) > 2:
            name, eq, val = a[2:].partition("=")
            flag = "--" + name.replace("_", "-")
            if flag in known:
                out.append(flag + eq + val)
            else:
                ignored.append(a)
                bare = flag[2:]
                if not eq and bare not in _VLLM_BOOLEAN_FLAGS and not bare.startswith("no-"):
                    if i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                        ignored.append(argv[i + 1])
                        i += 1
        elif a.startswith("-") and len(a) > 1 and not a[1].isdigit() and a not in known:
            ignored.append(a)  # e.g. -O3 (compilation level)
        else:
            out.append(a)
        i += 1
    return out, ignored


def parse_args(argv: list[str] | None) -> Config:
    """argv (without the program name) -> Config. Exits with argparse's message on bad values."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    modelled, ignored = split_argv(argv, parser)
    ns = parser.parse_args(modelled)
    profile = get_profile(ns.emu_profile)
    model = ns.model_flag or ns.model_tag or DEFAULT_MODEL
    seed = ns.emu_seed if ns.emu_seed is not None else (ns.seed if ns.seed is not None else 0)
    fault_types = [t.strip() for t in ns.emu_fault_types.split(",") if t.strip()]
    bad = [t for t in fault_types if t not in FAULT_TYPES]
    if bad:
        parser.error(f"--emu-fault-types: unknown {bad}; known: {','.join(FAULT_TYPES)}")
    if ns.block_size < 1:
        parser.error(f"--block-size must be a positive number of tokens, got {ns.block_size}")
    return Config(
        model=model,
        served_model_names=list(ns.served_model_name or [model]),
        host=ns.host,
        port=ns.port,
        tp=ns.tensor_parallel_size or profile.default_tp,
        pp=ns.pipeline_parallel_size,
        dp=ns.data_parallel_size,
        max_num_seqs=ns.max_num_seqs or profile.default_max_num_seqs,
        max_model_len=ns.max_model_len or profile.max_model_len,
        max_num_batched_tokens=ns.max_num_batched_tokens or profile.default_max_num_batched_tokens,
        gpu_memory_utilization=ns.gpu_memory_utilization,
        dtype=ns.dtype,
        enable_prefix_caching=ns.enable_prefix_caching,
        enable_prompt_tokens_details=ns.enable_prompt_tokens_details,
        api_key=ns.api_key or os.environ.get("VLLM_API_KEY") or None,
        max_num_queued_reqs=ns.max_num_queued_reqs,
        block_size=ns.block_size,
        num_gpu_blocks_override=ns.num_gpu_blocks_override,
        profile=profile,
        ttft_s=max(0.0, ns.emu_ttft_ms) / 1000.0,
        itl_s=max(0.0, ns.emu_itl_ms) / 1000.0,
        itl_dist=ns.emu_itl_dist,
        itl_cv=ns.emu_itl_cv,
        time_scale=ns.emu_time_scale,
        seed=seed,
        eos_prob=ns.emu_eos_prob,
        natural_len=ns.emu_natural_len,
        fault_rate=ns.emu_fault_rate,
        fault_types=fault_types,
        startup_delay=ns.emu_startup_delay,
        crash_after=ns.emu_crash_after,
        truth_log=ns.emu_truth_log,
        write_bytes=max(1024, ns.emu_write_bytes),
        log_level=ns.emu_log_level,
        ignored_flags=ignored,
        runner=ns.runner,
        convert=ns.convert,
        embed_dim=max(1, ns.emu_embed_dim),
        timeout_keep_alive=max(0.0, ns.emu_timeout_keep_alive),
    )
