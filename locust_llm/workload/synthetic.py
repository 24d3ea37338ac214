"""Synthetic prompts of a target token length, optionally behind shared prefixes.

Why: fixed or random-length prompts are what `vllm bench serve --dataset-name random` and
guidellm's synthetic data send; length is the variable that matters for prefill cost, so
the text must hit the requested token count (exactly with a tokenizer, by the shared
``ceil(chars / 4)`` approximation otherwise, see ``tokens.py``). Shared prefixes (``SharedPrefixes``)
exercise prefix caching: N groups, each prompt = its group's prefix + a unique suffix.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from .distributions import Distribution, parse_length
from .prompt import Prompt
from .tokens import TokenCounter, WordCounter

__all__ = ["WORDS", "random_words", "fit_text", "SharedPrefixes", "SyntheticPrompts"]

# Three-letter common English words: n of them joined by spaces are 4n - 1 characters, so
# n tokens by the ceil(chars / 4) approximation (tokens.py, shared with the emulator) and
# n tokens on real BPE vocabularies too (each is one token with its leading space).
WORDS: tuple[str, ...] = tuple(
    dict.fromkeys(
        """
        the and for are but not you all any can had her was one our out day get has him his
        how man new now old see two way who boy did its let put say she too use may end far
        few got run set try why yes big own top air car job law war act age ago art bad bed
        box buy cut eat eye fun hot key lot low oil pay red sea six son ten win yet add arm
        bit cup dog due fly gas hit map met mix off per sun tax via
        """.split()
    )
)
assert all(len(w) == 3 for w in WORDS)


def random_words(rng: random.Random, n: int) -> list[str]:
    """``n`` words drawn uniformly from ``WORDS``."""
    return rng.choices(WORDS, k=n)


def fit_text(
    rng: random.Random, n_tokens: int, tokenizer: TokenCounter | None = None
) -> tuple[str, int]:
    """Random text of ``n_tokens`` tokens; returns ``(text, actual_count)``.

    Without a tokenizer (or with the approximation) the count is exact by construction.
    With one: draw words, encode, cut the ids to ``n`` and decode, then correct for
    re-tokenisation drift (decode/encode is not always a round trip) a few times; the
    returned count is the tokenizer's own count of the returned text.
    """
    if n_tokens < 1:
        raise ValueError(f"n_tokens must be >= 1, got {n_tokens}")
    if tokenizer is None or not tokenizer.exact:
        return " ".join(random_words(rng, n_tokens)), n_tokens
    text = " ".join(random_words(rng, n_tokens))
    best = (text, tokenizer.count(text))
    for _ in range(8):
        ids = tokenizer.encode(text)
        if len(ids) < n_tokens:
            text = text + " " + " ".join(random_words(rng, n_tokens - len(ids)))
            ids = tokenizer.encode(text)
        if len(ids) > n_tokens:
            text = tokenizer.decode(ids[:n_tokens])
        count = tokenizer.count(text)
        if abs(count - n_tokens) < abs(best[1] - n_tokens) or count == n_tokens:
            best = (text, count)
        if count == n_tokens:
            break
    return best


class SharedPrefixes:
    """``groups`` fixed prefixes of ``tokens`` tokens each (seeded, reproducible).

    Prompts choose a group uniformly at random (seeded by the caller's rng), so every group
    is reused and a server with prefix caching serves the prefix from cache after the first
    hit per group.
    """

    def __init__(
        self, groups: int, tokens: int, seed: int = 0, tokenizer: TokenCounter | None = None
    ) -> None:
        if groups < 1:
            raise ValueError(f"prefix groups must be >= 1, got {groups}")
        if tokens < 1:
            raise ValueError(f"prefix tokens must be >= 1, got {tokens}")
        rng = random.Random(f"prefix:{seed}")
        self.tokens = tokens
        fitted = [fit_text(rng, tokens, tokenizer) for _ in range(groups)]
        self.texts = [t for t, _ in fitted]
        self.counts = [c for _, c in fitted]

    def __len__(self) -> int:
        return len(self.texts)

    def choose(self, rng: random.Random) -> int:
        return rng.randrange(len(self.texts))


class SyntheticPrompts:
    """Endless, reproducible stream of synthetic ``Prompt`` s.

    ``prompt_tokens``: length distribution of the prompt (of the *unique suffix* when
    ``prefixes`` is set: total = prefix + suffix). ``max_tokens``: output length
    distribution (``None`` leaves it to the user's default). Same seed -> same prompts.
    """

    def __init__(
        self,
        prompt_tokens: str | int | Distribution = 128,
        max_tokens: str | int | Distribution | None = None,
        *,
        seed: int = 0,
        tokenizer: TokenCounter | None = None,
        prefixes: SharedPrefixes | None = None,
        system: str | None = None,
    ) -> None:
        self.prompt_dist = parse_length(prompt_tokens)
        self.output_dist = parse_length(max_tokens) if max_tokens is not None else None
        self.tokenizer = tokenizer if tokenizer is not None else WordCounter()
        self.prefixes = prefixes
        self.system = system
        self._rng = random.Random(f"synthetic:{seed}")

    def next(self) -> Prompt:
        rng = self._rng
        n = self.prompt_dist.sample(rng)
        max_tokens = self.output_dist.sample(rng) if self.output_dist is not None else None
        group = None
        text, count = fit_text(rng, n, self.tokenizer)
        if self.prefixes is not None:
            group = self.prefixes.choose(rng)
            text = self.prefixes.texts[group] + "\n" + text
            count = (
                self.tokenizer.count(text)
                if self.tokenizer.exact
                else self.prefixes.counts[group] + count
            )
        messages: tuple = ({"role": "user", "content": text},)
        if self.system:
            messages = ({"role": "system", "content": self.system}, *messages)
        return Prompt(
            messages, prompt_tokens=count, max_tokens=max_tokens, group=group, source="synthetic"
        )

    def __iter__(self) -> Iterator[Prompt]:
        while True:
            yield self.next()
