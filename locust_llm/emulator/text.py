"""Deterministic stand-ins for tokenizer and model: prompt token counts and output text.

Prompt tokens are COUNTED, not tokenized: ``ceil(len(text) / 4)`` per text (about what BPE
tokenizers give for English), plus a chat-template overhead of 3 tokens per message and 3 for
the assistant turn (OpenAI's published counting rule), plus each image part's charge
(``images.py``). A prompt given as token ids counts as its length. The count is a pure
function of the request, so clients and tests can predict it.

Output is a window over a fixed stream of "word" tokens (one token = one word with its leading
space) drawn from a small vocabulary with ``random.Random(seed)``; the window starts at an
offset derived from the prompt, so the same prompt and seed always give the same text.
"""

from __future__ import annotations

import hashlib
import math
import random

import orjson

from .images import parts_image_tokens

CHARS_PER_TOKEN = 4
CHAT_TOKENS_PER_MESSAGE = 3
CHAT_TOKENS_REPLY_PRIMING = 3
_STREAM_LEN = 1 << 14

_VOCAB = (
    "the of and to a in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there one all we their can has been if more when "
    "will would who so no model token server latency batch stream cache queue prefix engine "
    "request response throughput memory kernel tensor parallel layer attention decode prefill "
    "step time first inter output input prompt length sequence block weight load test user "
    "metric value rate peak mean median tail percentile sample window second milli micro fast "
    "slow steady busy idle ready long short large small high low good clear simple exact true "
    "data text word line chunk event write read send receive open close start stop end run "
    "node core thread socket port host replica balance route proxy upstream client greenlet"
).split()


def count_text_tokens(text: str) -> int:
    """Token count of one text: ceil(chars / 4); empty text is 0 tokens."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def chat_prompt(messages: list) -> tuple[str, int]:
    """(concatenated text, prompt token count) of a chat request's messages."""
    texts = [_content_text(m.get("content")) if isinstance(m, dict) else str(m) for m in messages]
    n = (
        sum(count_text_tokens(t) + CHAT_TOKENS_PER_MESSAGE for t in texts)
        + CHAT_TOKENS_REPLY_PRIMING
        # image parts: the vision model's charge per image (see images.py)
        + sum(parts_image_tokens(m.get("content")) for m in messages if isinstance(m, dict))
    )
    return "\n".join(texts), n


# Prompt tokens for prefix hashing: one token = one cell of CHARS_PER_TOKEN characters, so a
# block of tokens is one string slice (hashing a slice is ~10x cheaper than a tuple of pieces).
# Template cells and the padding of a message's last piece use Unicode noncharacters
# (U+FDD0..U+FDEF, reserved for internal use and absent from interchanged text), so no text
# can forge a template token.
_PAD, _HEAD, _END, _REPLY = "\ufdd0", "\ufdd1", "\ufdd2" * 4, "\ufdd3" * 4


def _cells(text: str) -> str:
    return text + _PAD * (-len(text) % CHARS_PER_TOKEN)


def _header(role: str) -> str:
    """Two cells: the role (up to 7 characters of it) after a marker."""
    return _HEAD + (role + _PAD * 7)[:7]


def chat_units(messages: list) -> str:
    """The chat prompt as ``chat_prompt``'s count of 4-character token cells, for hashing.

    Each message is its role header (2 tokens), its text's cells and an end marker (1), then
    the assistant priming (3), as the count adds 3 tokens per message and 3 for the reply.
    """
    parts = []
    for m in messages:
        role = str(m.get("role", "user")) if isinstance(m, dict) else "user"
        text = _content_text(m.get("content")) if isinstance(m, dict) else str(m)
        parts += (_header(role), _cells(text), _END)
    parts += (_header("assistant"), _REPLY)
    return "".join(parts)


def completion_units(prompt: object) -> str | list[int]:
    """A completions prompt as tokens for hashing: 4-character cells of its text, or its ids."""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return _cells(prompt)
    return list(prompt) if isinstance(prompt, list) else []


def unit_width(units: str | list) -> int:
    """Items of ``units`` per token: a cell of characters, or one id."""
    return CHARS_PER_TOKEN if isinstance(units, str) else 1


def completion_prompt(prompt: object) -> tuple[str, int]:
    """(text, prompt token count) of a completions request's ``prompt`` (str, [str], [int])."""
    if isinstance(prompt, str):
        return prompt, count_text_tokens(prompt)
    if isinstance(prompt, list):
        if prompt and all(isinstance(x, int) for x in prompt):
            return " ".join(map(str, prompt)), len(prompt)
        if len(prompt) == 1 and isinstance(prompt[0], str):
            return prompt[0], count_text_tokens(prompt[0])
        if len(prompt) == 1 and isinstance(prompt[0], list):
            return " ".join(map(str, prompt[0])), len(prompt[0])
    raise ValueError("prompt must be a string, a list of token ids, or a list with one string")


class TextSource:
    """The seeded token stream; ``tokens(prompt, n)`` returns n JSON-escaped token bytes."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.words = [" " + rng.choice(_VOCAB) for _ in range(_STREAM_LEN)]
        # vocabulary words need no JSON escaping: bytes are the escaped form already
        self.escaped = [w.encode() for w in self.words]

    def offset(self, prompt_text: str) -> int:
        """Start of a prompt's window in the stream (stable across processes: not hash())."""
        h = hashlib.blake2b(prompt_text.encode("utf-8", "replace"), digest_size=8).digest()
        return int.from_bytes(h, "little") % _STREAM_LEN

    def words_at(self, start: int, n: int) -> list[str]:
        """n plain-text tokens starting at ``start`` (wrapping around)."""
        return [self.words[(start + i) % _STREAM_LEN] for i in range(n)]

    def escaped_at(self, start: int, n: int) -> list[bytes]:
        """n JSON-escaped token bytes starting at ``start`` (wrapping around)."""
        s = start % _STREAM_LEN
        if s + n <= _STREAM_LEN:
            return self.escaped[s : s + n]
        return [self.escaped[(s + i) % _STREAM_LEN] for i in range(n)]


def escape(text: str) -> bytes:
    """JSON string body (no quotes) of arbitrary text."""
    return orjson.dumps(text)[1:-1]


def apply_stop(words: list[str], stops: list[str]) -> tuple[int, str | None, str | None]:
    """Where generation stops on a stop string.

    Returns ``(n_tokens, last_token_text, matched)``: tokens generated up to and including the
    one where the earliest stop string begins, that token's text cut before the stop string
    (vLLM excludes the stop string from the output), and the matched string;
    ``(len(words), None, None)`` when nothing matches. (A stop string spanning several tokens
    is counted as ending in its first token: a simplification.)
    """
    text = "".join(words)
    best: tuple[int, str] | None = None
    for s in stops:
        i = text.find(s) if s else -1
        if i >= 0 and (best is None or i < best[0]):
            best = (i, s)
    if best is None:
        return len(words), None, None
    cut, matched = best
    pos = 0
    for k, w in enumerate(words):
        if pos + len(w) > cut:
            return k + 1, w[: cut - pos], matched
        pos += len(w)
    return len(words), None, None


def draw_eos_length(rng: random.Random, p: float, min_tokens: int, limit: int) -> int | None:
    """Tokens until a seeded EOS (geometric with per-token probability p), or None if past limit."""
    if p <= 0.0:
        return None
    if p >= 1.0:
        n = 1
    else:
        n = 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - p))
    n = max(n, min_tokens, 1)
    return n if n < limit else None
