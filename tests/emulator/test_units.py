"""Pure logic: flag parsing, profiles, the batch scheduler (no clock), text helpers."""

from __future__ import annotations

from locust_llm.emulator import text as textmod
from locust_llm.emulator.cli import parse_args
from locust_llm.emulator.engine import BatchEngine, Seq
from locust_llm.emulator.metrics import EngineMetrics
from locust_llm.emulator.prefix_cache import block_hashes
from locust_llm.emulator.profiles import PROFILES


def test_parse_vllm_spelling():
    cfg = parse_args(
        [
            "m",
            "--tensor_parallel_size=2",
            "--max-num-seqs",
            "4",
            "--enforce-eager",
            "--kv-cache-dtype",
            "fp8",
        ]
    )
    assert cfg.model == "m" and cfg.tp == 2 and cfg.max_num_seqs == 4
    assert cfg.ignored_flags == ["--enforce-eager", "--kv-cache-dtype", "fp8"]
    assert parse_args([]).model == "locust-llm/emulator" and parse_args([]).port == 8000
    assert parse_args(["--max-model-len", "32k"]).max_model_len == 32000


def test_profiles_shapes():
    p = PROFILES["llama-3.1-8b-h100"]
    one = p.step_time(0, 1, 100, 1)
    assert 0.005 < one < 0.009  # ~7 ms ITL at batch 1
    assert p.step_time(0, 64, 64 * 1000, 1) > one  # grows with batch/context
    assert p.step_time(0, 1, 100, 2) < one  # TP 2 is faster per step
    assert p.step_time(4000, 0, 4000, 1) > 2 * one  # long prefill is compute-bound
    assert 1e5 < p.kv_capacity_tokens(1, 0.92, None) < 1e6
    cpu = PROFILES["phi-3-mini-cpu"]
    assert abs(cpu.kv_capacity_tokens(1, 0.92, 8.0) - 2 * cpu.kv_capacity_tokens(1, 0.92, 4.0)) <= 2


def _engine(*flags):
    return BatchEngine(parse_args(["--emu-profile", "llama-3.1-8b-h100", *flags]))


def _run(e, steps):
    t = 0.0
    for _ in range(steps):
        dt = e.schedule_step(t)
        t += dt
        e.complete_step(t)
    return t


def test_batch_respects_max_num_seqs_and_budget():
    e = _engine("--max-num-seqs", "2", "--max-num-batched-tokens", "100")
    seqs = [Seq(150, 3, 0.0) for _ in range(3)]
    for s in seqs:
        e.waiting.append(s)
    e.schedule_step(0.0)
    assert e.num_running == 1 and e._work[0][1] == 100  # chunked prefill eats the whole budget
    e.complete_step(0.01)
    e.schedule_step(0.01)
    assert e.num_running == 2 and e.num_waiting == 1  # 50 tokens finish seq 0, 50 start seq 1
    _run(e, 20)
    assert all(s.generated == 3 and s.done for s in seqs)


def test_preemption_when_kv_runs_out():
    # 4 blocks x 16 = 64 tokens of KV: two sequences of 20 prompt + 20 output cannot both fit
    e = _engine("--num-gpu-blocks-override", "4", "--no-enable-prefix-caching")
    a, b = Seq(20, 20, 0.0), Seq(20, 20, 0.0)
    e.waiting.extend([a, b])
    _run(e, 60)
    assert a.done and b.done and a.generated == 20 and b.generated == 20
    assert e.kv_used == 0


def test_prefix_caching_skips_prefill():
    keys = block_hashes(["z"] * 160, 16)
    e = _engine()
    s1 = Seq(160, 1, 0.0, keys)
    e.waiting.append(s1)
    _run(e, 2)
    s2 = Seq(160, 1, 0.0, keys)
    e.waiting.append(s2)
    e.schedule_step(1.0)
    # 160 tokens are 10 whole blocks; the last token is always computed, so the hit is 9 blocks
    assert s1.cached == 0 and s1.created == 160
    assert s2.cached == 144 and e._work[0][1] == 16
    e.complete_step(1.1)
    assert s2.created == 16  # its recomputed last block, written again
    e2 = _engine("--no-enable-prefix-caching")
    s3 = Seq(160, 1, 0.0, keys)
    e2.waiting.append(s3)
    e2.schedule_step(0.0)
    assert s3.cached == 0 and e2._work[0][1] == 160


def test_preempted_request_is_looked_up_again_but_counted_once():
    # 8 blocks of KV: b (admitted last) is preempted when a's decode needs room; coming back
    # it finds what is left of its prompt blocks, which vLLM's counters leave out
    m = EngineMetrics("m", lambda: (0, 0, 0.0))
    cfg = parse_args(["--emu-profile", "llama-3.1-8b-h100", "--num-gpu-blocks-override", "8"])
    e = BatchEngine(cfg, m)
    a = Seq(64, 40, 0.0, block_hashes(list(range(64)), 16))
    b = Seq(48, 40, 0.0, block_hashes(list(range(100, 148)), 16))
    e.waiting.extend([a, b])
    readmitted = []
    take = e._take_hit
    e._take_hit = lambda s, cached, first: (readmitted.append(cached) if not first else None,
                                            take(s, cached, first))  # fmt: skip
    _run(e, 200)
    text = m.render().decode()
    assert a.done and b.done and a.generated == 40 and b.generated == 40 and e.kv_used == 0
    assert 'vllm:num_preemptions_total{engine="0",model_name="m"} 1.0' in text
    assert readmitted and readmitted[0] > 0
    assert 'vllm:prefix_cache_queries_total{engine="0",model_name="m"} 112.0' in text
    assert 'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 0.0' in text
    assert len(e.cache) <= 8 and e.cache.free_blocks == len(e.cache)  # nothing still held


def test_text_helpers():
    assert textmod.count_text_tokens("abcd") == 1 and textmod.count_text_tokens("abcde") == 2
    assert textmod.chat_prompt([{"role": "user", "content": "abcd"}])[1] == 1 + 3 + 3
    assert textmod.apply_stop([" a", " bc", " d"], ["c d"]) == (2, " b", "c d")
    t1, t2 = textmod.TextSource(1), textmod.TextSource(1)
    assert t1.words_at(t1.offset("p"), 5) == t2.words_at(t2.offset("p"), 5)
    assert textmod.TextSource(2).words != t1.words


def test_output_is_built_by_keyword_only():
    # a dozen fields of similar types (ids, counts, texts): by position they swap silently
    import pytest

    from locust_llm.emulator.output import Output

    with pytest.raises(TypeError):
        Output(*range(12))
