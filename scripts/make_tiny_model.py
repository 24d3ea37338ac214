"""Build a tiny random-weight Llama that real vLLM can serve on 2 CPU cores, offline.

Run with the vLLM venv's python: `.venv-vllm/bin/python scripts/make_tiny_model.py models/tiny-llama`.
No network: the byte-level BPE tokenizer is trained with `tokenizers` on text files that every
Python install has (its own standard library sources), and the weights are random with a fixed
seed, so two builds give the same model.

The model exists to be *measured*, not to say anything: what matters is that it is fast, that
its output decodes to printable ASCII (so text checks and token counts stay simple), and that it
never stops before `max_tokens` (so usage counts are exact without `ignore_eos`). Scaling
`lm_head` up makes sampling nearly greedy; zeroing the rows of EOS and of every token that does
not decode to printable ASCII keeps those tokens out of the output.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

VOCAB = 8192
HIDDEN = 128
LAYERS = 2
HEADS = 4
MAX_POS = 2048
SEED = 1234
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL = ["<s>", "</s>", "<pad>"]


def corpus_files(limit: int = 400) -> list[str]:
    """Text the tokenizer learns from: the interpreter's own .py sources (always present)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(str(p) for p in stdlib.glob("*.py"))[:limit]
    if not files:
        raise SystemExit(f"make_tiny_model: no .py files under {stdlib} to train a tokenizer on")
    return files


def build_tokenizer(out: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train(corpus_files(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = MAX_POS
    fast.save_pretrained(out)
    return fast


def printable(text: str) -> bool:
    return bool(text) and all(" " <= c <= "~" for c in text)


def build_model(out: Path, tok) -> int:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    vocab = len(tok)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=HIDDEN,
        intermediate_size=HIDDEN * 2,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        max_position_embeddings=MAX_POS,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        head = model.lm_head.weight
        head.mul_(40.0)
        for i in range(vocab):
            if i == tok.eos_token_id or not printable(tok.decode([i])):
                head[i].zero_()
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, do_sample=False
    ).save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else "models/tiny-llama")
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out)
    n = build_model(out, tok)
    (out / "locust-llm-model.json").write_text(
        json.dumps({"params": n, "vocab": len(tok), "seed": SEED}) + "\n"
    )
    print(f"make_tiny_model: {out} ({n / 1e6:.2f} M parameters, vocab {len(tok)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
