"""Named performance profiles: how long one engine step takes, and how much KV cache fits.

A step of a continuous-batching engine is, to first order, a roofline: it reads every weight
once (memory-bound in decode) and does ``2 * params`` FLOP per token processed (compute-bound in
prefill), plus a fixed per-step overhead (scheduler, sampling, Python) and, with tensor
parallelism, two all-reduces per layer. That is enough to reproduce the shapes a load test must
show: ITL grows slowly with batch size, TTFT grows with prompt length, throughput plateaus when
``max_num_seqs`` is reached, TP k divides the weight reads by k but adds all-reduce latency.

Numbers below are *calibrated guesses* from public specs, not measurements of vLLM; each source
is cited next to it. The ``constant`` profile ignores all of this and paces streams at exactly
``--emu-ttft-ms`` / ``--emu-itl-ms`` (used by tests and the client benchmarks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GIB = 1024**3


@dataclass(frozen=True)
class Profile:
    """Model + hardware description; ``step_time`` turns a batch into seconds."""

    name: str
    description: str
    kind: str  # "constant" or "roofline"
    params: float = 0.0  # model parameters
    weight_bytes: float = 0.0  # whole model, all ranks together
    kv_bytes_per_token: float = 0.0  # whole model: layers * kv_heads * head_dim * 2 (K,V) * dtype
    n_layers: int = 0
    hidden: int = 0
    mem_bw: float = 0.0  # effective bytes/s of one device (or CPU socket)
    flops: float = 0.0  # effective FLOP/s of one device
    device_mem: float = 0.0  # bytes per device; 0 = CPU (KV from VLLM_CPU_KVCACHE_SPACE)
    activation_reserve: float = 0.0  # bytes per device kept for activations / CUDA graphs
    step_overhead_s: float = 0.0  # scheduler + sampling + detokenize per step
    allreduce_latency_s: float = 0.0  # one all-reduce, small message
    link_bw: float = 0.0  # all-reduce bus bandwidth, bytes/s
    default_tp: int = 1
    default_max_num_seqs: int = 256
    default_max_num_batched_tokens: int = 8192
    max_model_len: int = 32768

    @property
    def is_cpu(self) -> bool:
        return self.kind == "roofline" and self.device_mem == 0.0

    def step_time(
        self, prefill_tokens: int, decode_seqs: int, context_tokens: int, tp: int
    ) -> float:
        """Seconds one engine step takes.

        prefill_tokens: prompt tokens computed in this step (chunked prefill);
        decode_seqs: sequences producing one token; context_tokens: KV tokens read by attention
        (sum over the batch). Work is split over ``tp`` ranks; all-reduce is added per layer.
        """
        tp = max(1, tp)
        tokens = prefill_tokens + decode_seqs
        if tokens <= 0:
            return 0.0
        mem = (self.weight_bytes + context_tokens * self.kv_bytes_per_token) / tp / self.mem_bw
        comp = 2.0 * self.params * tokens / tp / self.flops
        t = self.step_overhead_s + max(mem, comp)
        if tp > 1:
            # Two all-reduces per layer (after attention and after the MLP), ring algorithm:
            # 2 (tp-1)/tp of the activations (tokens * hidden * 2 bytes) cross the link.
            payload = tokens * self.hidden * 2.0
            per_ar = self.allreduce_latency_s + 2.0 * (tp - 1) / tp * payload / self.link_bw
            t += 2 * self.n_layers * per_ar
        return t

    def kv_capacity_tokens(
        self, tp: int, gpu_memory_utilization: float, cpu_kvcache_gib: float | None
    ) -> int:
        """KV cache capacity in tokens, the way vLLM sizes it.

        GPU: ``device_mem * gpu_memory_utilization - weights/tp - activation reserve`` per rank,
        each rank holding 1/tp of every token's KV. CPU: ``VLLM_CPU_KVCACHE_SPACE`` GiB (vLLM's
        default is 4 GiB when unset) for the whole model's KV.
        """
        if self.kind == "constant":
            return 1 << 40
        tp = max(1, tp)
        if self.is_cpu:
            space = (cpu_kvcache_gib if cpu_kvcache_gib else 4.0) * GIB
            return max(0, int(space * tp / self.kv_bytes_per_token))
        free = (
            self.device_mem * gpu_memory_utilization
            - self.weight_bytes / tp
            - self.activation_reserve
        )
        return max(0, int(free / (self.kv_bytes_per_token / tp)))


# --- Hardware (effective = peak x an assumed efficiency; the efficiencies are our guesses) ---
# NVIDIA H100 SXM5 datasheet (nvidia.com/en-us/data-center/h100): 80 GB HBM3 at 3.35 TB/s,
# 989 TFLOPS dense BF16, NVLink 4 at 900 GB/s (total, both directions).
_H100_BW = 3.35e12 * 0.80
_H100_FLOPS = 989e12 * 0.50
_H100_MEM = 80e9
_H100_NVLINK_BUSBW = 360e9  # ~80 % of one direction's 450 GB/s
# vLLM's custom all-reduce on NVLink is a few microseconds for decode-sized messages.
_H100_AR_LATENCY = 8e-6
# Intel Xeon 4th gen (Sapphire Rapids), one socket: 8 x DDR5-4800 = 307 GB/s peak; AMX BF16.
_SPR_BW = 307e9 * 0.65
_SPR_FLOPS = 10e12  # effective AMX BF16 GEMM throughput through vLLM's CPU backend (a guess)

PROFILES: dict[str, Profile] = {
    "constant": Profile(
        name="constant",
        description="fixed TTFT/ITL from --emu-ttft-ms/--emu-itl-ms, every stream paced "
        "independently; no batching delay (tests, client benchmarks)",
        kind="constant",
        default_max_num_seqs=1 << 30,
        default_max_num_batched_tokens=1 << 30,
        max_model_len=32768,
    ),
    # Llama 3.1 8B (meta-llama/Llama-3.1-8B-Instruct config.json: 32 layers, hidden 4096,
    # 8 KV heads x head_dim 128, max_position_embeddings 131072), BF16 weights 16.06 GB.
    # Batch-1 decode = 1 ms + 16 GB / 2.7 TB/s = ~7 ms ITL, in line with published vLLM H100
    # figures for 8B models (6-8 ms).
    "llama-3.1-8b-h100": Profile(
        name="llama-3.1-8b-h100",
        description="Llama 3.1 8B BF16 on one H100 SXM (roofline, calibrated)",
        kind="roofline",
        params=8.03e9,
        weight_bytes=16.06e9,
        kv_bytes_per_token=32 * 8 * 128 * 2 * 2,
        n_layers=32,
        hidden=4096,
        mem_bw=_H100_BW,
        flops=_H100_FLOPS,
        device_mem=_H100_MEM,
        activation_reserve=3e9,
        step_overhead_s=1.0e-3,
        allreduce_latency_s=_H100_AR_LATENCY,
        link_bw=_H100_NVLINK_BUSBW,
        default_tp=1,
        default_max_num_seqs=256,
        default_max_num_batched_tokens=8192,
        max_model_len=131072,
    ),
    # Llama 3.1 70B (config.json: 80 layers, hidden 8192, 8 KV heads x 128), BF16 141 GB:
    # needs TP 4 on 80 GB cards. Batch-1 decode at TP 4 = 1.2 ms + 35 GB / 2.7 TB/s + 160
    # all-reduces = ~15 ms ITL (published TP-4 H100 figures: 13-20 ms).
    "llama-3.1-70b-tp4-h100": Profile(
        name="llama-3.1-70b-tp4-h100",
        description="Llama 3.1 70B BF16 on H100 SXM, TP 4 by default (roofline, calibrated)",
        kind="roofline",
        params=70.6e9,
        weight_bytes=141.1e9,
        kv_bytes_per_token=80 * 8 * 128 * 2 * 2,
        n_layers=80,
        hidden=8192,
        mem_bw=_H100_BW,
        flops=_H100_FLOPS,
        device_mem=_H100_MEM,
        activation_reserve=4e9,
        step_overhead_s=1.2e-3,
        allreduce_latency_s=_H100_AR_LATENCY,
        link_bw=_H100_NVLINK_BUSBW,
        default_tp=4,
        default_max_num_seqs=256,
        default_max_num_batched_tokens=8192,
        max_model_len=131072,
    ),
    # Phi-3-mini-4k (microsoft/Phi-3-mini-4k-instruct config.json: 32 layers, hidden 3072,
    # 32 heads x head_dim 96, no GQA, 4096 context), 3.82 B params, BF16 on one Sapphire
    # Rapids socket. Batch-1 decode = 5 ms + 7.6 GB / 200 GB/s = ~43 ms ITL. TP ranks are
    # sockets / OMP thread groups (VLLM_CPU_OMP_THREADS_BIND), all-reduce through shared memory.
    "phi-3-mini-cpu": Profile(
        name="phi-3-mini-cpu",
        description="Phi-3-mini 3.8B BF16 on one Xeon SPR socket (roofline, calibrated)",
        kind="roofline",
        params=3.82e9,
        weight_bytes=7.64e9,
        kv_bytes_per_token=32 * 32 * 96 * 2 * 2,
        n_layers=32,
        hidden=3072,
        mem_bw=_SPR_BW,
        flops=_SPR_FLOPS,
        device_mem=0.0,
        step_overhead_s=5e-3,
        allreduce_latency_s=40e-6,
        link_bw=20e9,
        default_tp=1,
        default_max_num_seqs=256,
        default_max_num_batched_tokens=4096,
        max_model_len=4096,
    ),
}


def get_profile(name: str) -> Profile:
    """Look a profile up by name; ValueError lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown --emu-profile {name!r}; known: {', '.join(PROFILES)}") from None


def blocks(tokens: int, block_size: int) -> int:
    """KV blocks needed for ``tokens`` (vLLM allocates whole blocks)."""
    return math.ceil(tokens / block_size) if tokens > 0 else 0
