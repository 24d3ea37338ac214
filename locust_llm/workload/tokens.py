"""Token counting: an optional local HF tokenizer, else a documented approximation.

Why: the workload must say how many prompt tokens it meant to send (synthetic lengths,
dataset counts when the server reports no ``usage``). The exact count needs the served
model's tokenizer; without one we use a rule the emulator shares, so runs against the
emulator agree exactly and runs against real servers are close.

**The approximation: ``ceil(len(text) / 4)`` tokens per text** (about what BPE tokenizers
give for English; the same rule as the emulator's ``emulator/text.py``, so counts agree
exactly against the emulator). Synthetic text is built only from three-letter common
English words joined by single spaces, so n words are ``4n - 1`` characters = exactly n
tokens by this rule *and* n words, each a single token (with its leading space) in the
GPT-2/Llama/Qwen BPE vocabularies: close on real servers too. Counts are of message
content only: chat templates add a few tokens per message on the server (the emulator
adds 3 per message + 3), which the server's ``usage.prompt_tokens`` includes.

Tokenizers load lazily from a local ``tokenizer.json`` (``tokenizers.Tokenizer.from_file``);
nothing is downloaded.
"""

from __future__ import annotations

import math
import os
from typing import Protocol

__all__ = ["TokenCounter", "WordCounter", "HFTokenizer", "load_tokenizer", "count_tokens"]


class TokenCounter(Protocol):
    """What the workload needs from a tokenizer."""

    exact: bool

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def count(self, text: str) -> int: ...


def count_tokens(text: str) -> int:
    """The approximate token count: ``ceil(len(text) / 4)`` (0 for empty text)."""
    return math.ceil(len(text) / 4)


class WordCounter:
    """The approximation as a ``TokenCounter``; ``encode``/``decode`` split on whitespace
    (ids are word indices, not model ids), used to trim synthetic word text."""

    exact = False

    def __init__(self) -> None:
        self._vocab: dict[str, int] = {}
        self._words: list[str] = []

    def encode(self, text: str) -> list[int]:
        ids = []
        for word in text.split():
            i = self._vocab.get(word)
            if i is None:
                i = self._vocab[word] = len(self._words)
                self._words.append(word)
            ids.append(i)
        return ids

    def decode(self, ids: list[int]) -> str:
        return " ".join(self._words[i] for i in ids)

    def count(self, text: str) -> int:
        return count_tokens(text)


class HFTokenizer:
    """A Hugging Face ``tokenizers`` tokenizer loaded from a local file (exact counts).

    Special tokens (BOS etc.) are not counted: the chat template the server applies adds
    its own, and ``usage.prompt_tokens`` from the server is preferred anyway.
    """

    exact = True

    def __init__(self, tokenizer) -> None:  # a tokenizers.Tokenizer
        self._tok = tokenizer

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> HFTokenizer:
        try:
            from tokenizers import Tokenizer  # lazy: optional dependency
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "a tokenizer path was given but the 'tokenizers' package is not installed; "
                "pip install tokenizers (or drop the tokenizer option to use the word approximation)"
            ) from exc
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, "tokenizer.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"tokenizer file not found: {path} (a local tokenizer.json is needed)"
            )
        return cls(Tokenizer.from_file(path))

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=True)

    def count(self, text: str) -> int:
        return len(self.encode(text))


def load_tokenizer(path: str | os.PathLike[str] | None) -> TokenCounter:
    """``HFTokenizer`` for a local path, the word approximation for ``None``/empty."""
    if not path:
        return WordCounter()
    return HFTokenizer.from_file(path)
