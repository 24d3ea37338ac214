"""Prompts for trace records: equal block ids give byte-identical prompt prefixes.

Why: a Mooncake record lists the ids of its prompt's 512-token blocks; two requests sharing
the first k ids share their first k*512 tokens, which is what the server's prefix cache
sees. So block id ``b`` always maps to the same text (seeded by ``(seed, b)``), exactly 512
tokens by the word rule of ``tokens.py`` (each word one token), blocks are joined with no
separator (each block text ends with a space), and the prompt's tail beyond its listed
blocks is unique to the record. With the word rule a block of 512 three-letter words plus
a trailing space is 2048 characters: 512 tokens by ``ceil(chars / 4)`` and 512 BPE tokens.
The emulator's prefix cache hashes 16-token (64-character) blocks, so a 512-token block is
32 whole emulator blocks and cache hits line up with the trace's blocks exactly.
"""

from __future__ import annotations

import math
import random
from functools import lru_cache

from .prompt import Prompt
from .synthetic import random_words
from .trace import MOONCAKE_BLOCK_TOKENS, TraceRecord

__all__ = ["block_text", "record_prompt", "scaled_length"]


@lru_cache(maxsize=4096)
def block_text(block_id: int, seed: int = 0, tokens: int = MOONCAKE_BLOCK_TOKENS) -> str:
    """The text of one block: ``tokens`` words, each followed by a space."""
    rng = random.Random(f"trace-block:{seed}:{block_id}")
    return "".join(w + " " for w in random_words(rng, tokens))


def _tail(record: TraceRecord, n: int, seed: int, loop: int) -> str:
    rng = random.Random(f"trace-tail:{seed}:{record.line}:{record.time!r}:{loop}")
    return "".join(w + " " for w in random_words(rng, n))


def scaled_length(n: int, block_tokens: int = MOONCAKE_BLOCK_TOKENS) -> int:
    """A Mooncake ``input_length`` with blocks of ``block_tokens`` instead of 512: scaled by
    ``block_tokens / 512`` (rounded up), so a record still covers every block it lists."""
    if block_tokens == MOONCAKE_BLOCK_TOKENS:
        return n
    return math.ceil(n * block_tokens / MOONCAKE_BLOCK_TOKENS)


def record_prompt(
    record: TraceRecord, seed: int = 0, block_tokens: int = MOONCAKE_BLOCK_TOKENS, loop: int = 0
) -> Prompt:
    """The request a record asks for; ``prompt_tokens`` is the record's input length.

    Records with content (generic JSONL) send it as given. Length-only records (Azure,
    Mooncake) get word text: their listed blocks, then unique words up to ``input_length``.
    ``block_tokens`` below 512 shrinks the blocks and the input length in proportion (a
    small model's context), keeping which requests share which prefix blocks. ``loop``:
    the pass over a looped trace; listed blocks are the same text in every pass (the trace
    says they are the same blocks), the unlisted tail is new in each.
    """
    extra = {"trace_line": record.line, "scheduled": record.time}
    if record.messages is not None:
        return Prompt(record.messages, None, record.output_length, source="trace", extra=extra)
    if record.prompt is not None:
        return Prompt.from_text(
            record.prompt, max_tokens=record.output_length, source="trace", extra=extra
        )
    n = max(1, scaled_length(record.input_length or 0, block_tokens))
    parts, used = [], 0
    for b in record.hash_ids:
        take = min(block_tokens, n - used)
        if take <= 0:
            break
        text = block_text(b, seed, block_tokens)
        parts.append(text if take == block_tokens else text[: 4 * take])
        used += take
    if used < n:
        parts.append(_tail(record, n - used, seed, loop))
    text = "".join(parts)[:-1]  # the last word's trailing space: 4n - 1 chars = n tokens
    return Prompt.from_text(
        text, prompt_tokens=n, max_tokens=record.output_length, source="trace", extra=extra
    )
