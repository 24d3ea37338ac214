"""Timestamped request traces: parsing Mooncake JSONL, Azure LLM inference CSV and a generic JSONL.

Why: production traces carry the arrival pattern (bursts, diurnal drift) and, for Mooncake,
which 512-token prompt blocks requests share, i.e. the prefix-cache hit pattern. Replaying
them needs the records as plain values: send time (seconds from the trace's first record),
prompt length or content, output length, block ids. Every malformed record is reported with
the file, the 1-based line and the field, and what was expected.

Formats:

- ``mooncake``: JSONL, ``{"timestamp": ms, "input_length": n, "output_length": m,
  "hash_ids": [ids of 512-token blocks]}`` (Mooncake's published traces).
- ``azure``: CSV with header ``TIMESTAMP,ContextTokens,GeneratedTokens`` (Azure LLM inference
  traces; TIMESTAMP is a date-time such as ``2023-11-16 18:15:46.6805900`` or seconds).
- ``jsonl``: ``{"timestamp": seconds, "messages": [...] | "prompt": str, "max_tokens": m}``.

Timestamps must be non-decreasing (a trace is a schedule; a record earlier than the one
before it is an error, not something to sort silently).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "FORMATS",
    "MOONCAKE_BLOCK_TOKENS",
    "TraceError",
    "TraceRecord",
    "detect_format",
    "load_trace",
]

FORMATS = ("mooncake", "azure", "jsonl")
MOONCAKE_BLOCK_TOKENS = 512


class TraceError(ValueError):
    """A trace file is missing or malformed; the message names file, line and field."""

    def __init__(
        self, path: str, message: str, line: int | None = None, field_name: str | None = None
    ) -> None:
        self.path, self.line, self.field, self.reason = path, line, field_name, message
        where = path if line is None else f"{path}:{line}"
        if field_name is not None:
            where += f" field {field_name!r}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class TraceRecord:
    """One request of a trace; ``time`` is seconds after the trace's first record."""

    time: float
    input_length: int | None = None
    output_length: int | None = None
    hash_ids: tuple[int, ...] = ()
    messages: tuple[dict[str, Any], ...] | None = None
    prompt: str | None = None
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def _number(path: str, line: int, obj: dict, name: str, *, required: bool = True) -> float | None:
    if name not in obj:
        if required:
            raise TraceError(path, "missing (expected a number)", line, name)
        return None
    v = obj[name]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise TraceError(path, f"expected a finite number, got {v!r}", line, name)
    return v


def _length(path: str, line: int, obj: dict, name: str, *, required: bool = True) -> int | None:
    v = _number(path, line, obj, name, required=required)
    if v is None:
        return None
    if v != int(v) or v < 0:
        raise TraceError(path, f"expected a whole number >= 0, got {v!r}", line, name)
    return int(v)


def _jsonl_objects(path: str):
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            s = raw.strip()
            if not s:
                continue
            try:
                obj = json.loads(s)
            except json.JSONDecodeError as e:
                raise TraceError(path, f"not valid JSON ({e.msg})", lineno) from None
            if not isinstance(obj, dict):
                raise TraceError(path, "expected a JSON object per line", lineno)
            yield lineno, obj


def _mooncake(path: str) -> list[TraceRecord]:
    out = []
    for line, obj in _jsonl_objects(path):
        ts = _number(path, line, obj, "timestamp")
        n_in = _length(path, line, obj, "input_length")
        n_out = _length(path, line, obj, "output_length")
        ids = obj.get("hash_ids", [])
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            raise TraceError(path, "expected a list of integer block ids", line, "hash_ids")
        need = math.ceil(n_in / MOONCAKE_BLOCK_TOKENS)
        if len(ids) > need:
            raise TraceError(
                path,
                f"{len(ids)} blocks of {MOONCAKE_BLOCK_TOKENS} tokens exceed input_length "
                f"{n_in} (at most {need})",
                line,
                "hash_ids",
            )
        out.append(TraceRecord(ts / 1000.0, n_in, n_out, tuple(ids), line=line))
    return out


def _azure_time(path: str, line: int, text: str) -> float:
    t = text.strip()
    try:
        return float(t)
    except ValueError:
        pass
    # Azure's traces carry 7 fractional digits; datetime takes at most 6.
    head, dot, frac = t.partition(".")
    try:
        base = datetime.fromisoformat(head.replace("T", " "))
    except ValueError:
        raise TraceError(
            path,
            f"expected a date-time like '2023-11-16 18:15:46.68' or seconds, got {text!r}",
            line,
            "TIMESTAMP",
        ) from None
    frac_s = float("0." + frac) if dot and frac.isdigit() else 0.0
    return base.timestamp() + frac_s


def _azure(path: str) -> list[TraceRecord]:
    out = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        for name in ("TIMESTAMP", "ContextTokens", "GeneratedTokens"):
            if name not in cols:
                raise TraceError(
                    path,
                    f"missing column (header has {', '.join(cols) or 'nothing'}; expected "
                    "TIMESTAMP,ContextTokens,GeneratedTokens)",
                    1,
                    name,
                )
        for row in reader:
            line = reader.line_num
            ts = _azure_time(path, line, row["TIMESTAMP"] or "")
            vals = {}
            for name in ("ContextTokens", "GeneratedTokens"):
                try:
                    vals[name] = float(row[name])
                except (TypeError, ValueError):
                    raise TraceError(
                        path, f"expected a whole number >= 0, got {row[name]!r}", line, name
                    ) from None
            n_in = _length(path, line, vals, "ContextTokens")
            n_out = _length(path, line, vals, "GeneratedTokens")
            out.append(TraceRecord(ts, n_in, n_out, line=line))
    return out


def _generic(path: str) -> list[TraceRecord]:
    out = []
    for line, obj in _jsonl_objects(path):
        ts = _number(path, line, obj, "timestamp")
        n_out = _length(path, line, obj, "max_tokens", required=False)
        messages, prompt = obj.get("messages"), obj.get("prompt")
        if messages is not None:
            if (
                not isinstance(messages, list)
                or not messages
                or not all(isinstance(m, dict) and "content" in m for m in messages)
            ):
                raise TraceError(
                    path, "expected a non-empty list of {role, content} objects", line, "messages"
                )
            messages = tuple(messages)
        elif prompt is not None:
            if not isinstance(prompt, str):
                raise TraceError(path, f"expected a string, got {prompt!r}", line, "prompt")
        else:
            raise TraceError(path, "missing (expected 'messages' or 'prompt')", line, "messages")
        out.append(
            TraceRecord(
                ts,
                None,
                n_out,
                messages=messages,
                prompt=prompt,
                line=line,
                extra={
                    k: v
                    for k, v in obj.items()
                    if k not in ("timestamp", "messages", "prompt", "max_tokens")
                },
            )  # fmt: skip
        )
    return out


_PARSERS = {"mooncake": _mooncake, "azure": _azure, "jsonl": _generic}


def detect_format(path: str) -> str:
    """The format named by the extension (``.csv``: Azure), else by the content: a CSV
    header, or the keys of the first record (``input_length``: Mooncake, else generic JSONL;
    both are ``.jsonl``, so the extension alone cannot tell them apart)."""
    if os.path.splitext(path)[1].lower() == ".csv":
        return "azure"
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            s = raw.strip()
            if not s:
                continue
            if s.startswith("{"):
                try:
                    obj = json.loads(s)
                except json.JSONDecodeError as e:
                    raise TraceError(path, f"not valid JSON ({e.msg})", lineno) from None
                if isinstance(obj, dict) and "input_length" in obj:
                    return "mooncake"
                return "jsonl"
            if "TIMESTAMP" in s and "ContextTokens" in s:
                return "azure"
            break
    raise TraceError(
        path, f"cannot tell the trace format; pass one of {', '.join(FORMATS)} explicitly"
    )


def load_trace(path: str | os.PathLike[str], fmt: str | None = None) -> list[TraceRecord]:
    """All records of a trace, times rebased so the first record is at 0 s. ``fmt``: one
    of ``FORMATS``, or ``None``/``"auto"`` to guess it (:func:`detect_format`)."""
    path = os.fspath(path)
    if fmt == "auto":
        fmt = None
    if fmt is not None and fmt not in FORMATS:
        raise TraceError(
            path, f"unknown trace format {fmt!r}; expected one of {', '.join(FORMATS)} (or auto)"
        )
    if not os.path.isfile(path):
        raise TraceError(path, "no such file (expected a trace file)")
    kind = fmt or detect_format(path)
    records = _PARSERS[kind](path)
    if not records:
        raise TraceError(path, "the trace has no records")
    for prev, rec in zip(records, records[1:]):
        if rec.time < prev.time:
            raise TraceError(
                path,
                f"timestamps must not decrease: {rec.time:g} s after {prev.time:g} s "
                f"(line {prev.line}); sort the trace by time",
                rec.line,
                "TIMESTAMP" if kind == "azure" else "timestamp",
            )
    t0 = records[0].time
    return [
        TraceRecord(
            r.time - t0,
            r.input_length,
            r.output_length,
            r.hash_ids,
            r.messages,
            r.prompt,
            r.line,
            r.extra,
        )  # fmt: skip
        for r in records
    ]
