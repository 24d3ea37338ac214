"""Prompt datasets from local files: ShareGPT JSON, JSONL, plain text lines.

Why: real prompt text and real length mixes (ShareGPT is what `vllm bench serve` uses)
stress a server differently from synthetic words. Only local paths are read; nothing is
fetched. A malformed file fails loudly with ``DatasetError`` naming the file and line (for
a JSON array also the item index), because a silently skipped half of a dataset would
change the workload without anyone noticing.

Formats (``format="auto"`` picks by extension: ``.json`` -> JSON array, ``.jsonl``/``.ndjson``
-> JSONL, anything else -> text; a ``.json`` file whose first character is not ``[`` is read
as JSONL):

- JSON array (ShareGPT): ``[{"conversations": [{"from": "human", "value": ...},
  {"from": "gpt", "value": ...}, ...]}, ...]``. ``from``: human/user -> user,
  gpt/assistant/chatgpt/bard/bing/model -> assistant, system -> system.
- JSONL: one object per line, each ``{"prompt": str}`` (optional ``"max_tokens"`` /
  ``"output_tokens"``), ``{"messages": [{"role", "content"}, ...]}`` or a ShareGPT item.
  JSON arrays accept these item forms too. Blank lines are skipped.
- Text: every non-blank line is one prompt.

Entries that are well-formed but carry no user turn (common in the public ShareGPT dump)
are skipped and counted in ``Dataset.skipped``.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

from .prompt import Message, Prompt
from .tokens import TokenCounter, count_tokens

__all__ = ["DatasetError", "Entry", "Dataset", "load_dataset"]

_ROLE_ALIASES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "system": "system",
}
_ROLES = {"system", "user", "assistant", "tool", "developer"}


class DatasetError(ValueError):
    """A dataset file is missing or malformed; ``path``, ``line`` and ``item`` locate it."""

    def __init__(
        self, path: str, message: str, line: int | None = None, item: int | None = None
    ) -> None:
        self.path, self.line, self.item, self.reason = path, line, item, message
        where = path if line is None else f"{path}:{line}"
        if item is not None:
            where += f" (item {item})"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Entry:
    """One dataset entry: its messages in order and where it came from (1-based line)."""

    messages: tuple[Message, ...]
    line: int
    max_tokens: int | None = None

    @property
    def user_turns(self) -> int:
        return sum(1 for m in self.messages if m["role"] == "user")

    def first_prompt(self, tokenizer: TokenCounter | None = None) -> Prompt:
        """The single-turn request of this entry, as `vllm bench serve` builds it.

        Messages up to and including the first user turn; ``max_tokens`` = the entry's own
        value, else the token count of the first assistant reply after it (ShareGPT), else
        ``None``.
        """
        count = tokenizer.count if tokenizer is not None else count_tokens
        msgs: list[Message] = []
        max_tokens = self.max_tokens
        it = iter(self.messages)
        for m in it:
            msgs.append(m)
            if m["role"] == "user":
                break
        if max_tokens is None:
            for m in it:
                if m["role"] == "assistant":
                    max_tokens = max(1, count(m["content"]))
                    break
                if m["role"] == "user":
                    break
        prompt_tokens = sum(count(m["content"]) for m in msgs)
        return Prompt(
            tuple(msgs),
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            source=f"line {self.line}",
        )


class Dataset:
    """Loaded entries plus seeded sampling."""

    def __init__(self, path: str, entries: list[Entry], skipped: int = 0) -> None:
        if not entries:
            raise DatasetError(
                path, "no usable entries (every entry lacks a user turn, or the file is empty)"
            )
        self.path, self.entries, self.skipped = path, entries, skipped

    def __len__(self) -> int:
        return len(self.entries)

    def sample(self, rng: random.Random) -> Entry:
        return self.entries[rng.randrange(len(self.entries))]

    def prompts(
        self,
        seed: int = 0,
        *,
        shuffle: bool = True,
        tokenizer: TokenCounter | None = None,
        offset: int = 0,
        stride: int = 1,
    ) -> Iterator[Prompt]:
        """Endless single-turn prompts: seeded random order (``shuffle``) or file order,
        cycling. ``offset``/``stride`` let K workers take disjoint slices (worker i of K:
        ``offset=i, stride=K``) of the same seeded order."""
        order = list(range(len(self.entries)))
        if shuffle:
            random.Random(f"dataset:{seed}").shuffle(order)
        i = offset
        while True:
            yield self.entries[order[i % len(order)]].first_prompt(tokenizer)
            i += stride


# --------------------------------------------------------------------------------------
# parsing


def _entry(obj: object, path: str, line: int, item: int | None) -> Entry | None:
    def fail(msg: str) -> DatasetError:
        return DatasetError(path, msg, line, item)

    if not isinstance(obj, dict):
        raise fail(f"expected an object, got {type(obj).__name__}")
    max_tokens = None
    for key in ("max_tokens", "output_tokens", "output_len"):
        if key in obj:
            v = obj[key]
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise fail(f"{key!r} must be a positive integer, got {v!r}")
            max_tokens = v
            break
    if "conversations" in obj:
        turns = obj["conversations"]
        if not isinstance(turns, list):
            raise fail("'conversations' must be a list")
        msgs = []
        for j, t in enumerate(turns):
            if not isinstance(t, dict) or "from" not in t or "value" not in t:
                raise fail(f"conversations[{j}] must be an object with 'from' and 'value'")
            role = _ROLE_ALIASES.get(str(t["from"]).lower())
            if role is None:
                raise fail(f"conversations[{j}]: unknown 'from' {t['from']!r}")
            if not isinstance(t["value"], str):
                raise fail(f"conversations[{j}]: 'value' must be a string")
            msgs.append({"role": role, "content": t["value"]})
    elif "messages" in obj:
        raw = obj["messages"]
        if not isinstance(raw, list):
            raise fail("'messages' must be a list")
        msgs = []
        for j, m in enumerate(raw):
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise fail(f"messages[{j}] must be an object with 'role' and 'content'")
            if m["role"] not in _ROLES:
                raise fail(f"messages[{j}]: unknown role {m['role']!r}")
            if not isinstance(m["content"], str):
                raise fail(f"messages[{j}]: 'content' must be a string")
            msgs.append({"role": m["role"], "content": m["content"]})
    elif "prompt" in obj:
        if not isinstance(obj["prompt"], str):
            raise fail("'prompt' must be a string")
        msgs = [{"role": "user", "content": obj["prompt"]}]
    else:
        raise fail("expected a 'prompt', 'messages' or 'conversations' key")
    if not any(m["role"] == "user" and m["content"].strip() for m in msgs):
        return None
    return Entry(tuple(msgs), line, max_tokens)


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DatasetError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DatasetError(path, f"not valid UTF-8 ({exc.reason})", line) from None


def _load_json_array(path: str, text: str) -> tuple[list[Entry], int]:
    """Walk the array item by item so every error knows its line and item index."""
    dec = json.JSONDecoder()
    n = len(text)

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    def skip_ws(pos: int) -> int:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        return pos

    pos = skip_ws(0)
    if pos >= n or text[pos] != "[":
        raise DatasetError(path, "expected a JSON array ('[')", line_of(pos))
    pos = skip_ws(pos + 1)
    entries: list[Entry] = []
    skipped = 0
    item = 0
    if pos < n and text[pos] == "]":
        return entries, skipped
    while True:
        start = pos
        try:
            obj, pos = dec.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise DatasetError(path, f"invalid JSON: {exc.msg}", exc.lineno, item) from None
        e = _entry(obj, path, line_of(start), item)
        if e is None:
            skipped += 1
        else:
            entries.append(e)
        item += 1
        pos = skip_ws(pos)
        if pos >= n:
            raise DatasetError(path, "unterminated JSON array (missing ']')", line_of(pos), item)
        if text[pos] == "]":
            if skip_ws(pos + 1) != n:
                raise DatasetError(path, "unexpected data after the JSON array", line_of(pos + 1))
            return entries, skipped
        if text[pos] != ",":
            raise DatasetError(
                path, f"expected ',' or ']' after item, got {text[pos]!r}", line_of(pos), item
            )
        pos = skip_ws(pos + 1)


def _load_jsonl(path: str, text: str) -> tuple[list[Entry], int]:
    entries: list[Entry] = []
    skipped = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                path, f"invalid JSON: {exc.msg} (column {exc.colno})", lineno
            ) from None
        e = _entry(obj, path, lineno, None)
        if e is None:
            skipped += 1
        else:
            entries.append(e)
    return entries, skipped


def _load_lines(path: str, text: str) -> tuple[list[Entry], int]:
    entries = [
        Entry(({"role": "user", "content": line.strip()},), lineno)
        for lineno, line in enumerate(text.splitlines(), 1)
        if line.strip()
    ]
    return entries, 0


_LOADERS = {"json": _load_json_array, "jsonl": _load_jsonl, "text": _load_lines}


def load_dataset(path: str | os.PathLike[str], format: str = "auto") -> Dataset:
    """Load a local dataset file; ``format`` is ``auto``, ``sharegpt``/``json``, ``jsonl``
    or ``text``. Raises ``DatasetError`` (file and line) on any problem."""
    path = os.fspath(path)
    if "://" in path:
        raise DatasetError(path, "only local files are supported (no URLs)")
    fmt = {"sharegpt": "json"}.get(format, format)
    if fmt not in (*_LOADERS, "auto"):
        raise DatasetError(
            path, f"unknown dataset format {format!r}; expected auto, sharegpt, json, jsonl or text"
        )
    text = _read_text(path)
    if fmt == "auto":
        ext = os.path.splitext(path)[1].lower()
        if ext == ".json":
            fmt = "json" if text.lstrip().startswith("[") else "jsonl"
        elif ext in (".jsonl", ".ndjson"):
            fmt = "jsonl"
        else:
            fmt = "text"
    entries, skipped = _LOADERS[fmt](path, text)
    return Dataset(path, entries, skipped)
