"""The one request-shaped value every prompt source yields.

Why a shared type: users send either chat messages or a completions prompt, and the
metrics need the *requested* token counts (prompt tokens as the workload meant them, the
output length asked for) to compare against the server's ``usage``. Sources (synthetic,
datasets, conversations) all hand out ``Prompt`` so user code has one shape to consume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Message", "Prompt"]

Message = dict[str, Any]
"""An OpenAI chat message: ``{"role": "user" | "assistant" | "system", "content": str}``."""


@dataclass(frozen=True)
class Prompt:
    """One request's input.

    ``messages`` is the chat form; ``text`` the completions form (for a dataset entry with
    several messages, ``text`` is their contents joined by blank lines). ``prompt_tokens``
    is the workload's own count (exact with a tokenizer, else the approximation in
    ``synthetic.count_tokens``); ``max_tokens`` the output length to request (``None``:
    let the user's default apply). ``group`` is the shared-prefix group, if any.
    """

    messages: tuple[Message, ...]
    prompt_tokens: int | None = None
    max_tokens: int | None = None
    group: int | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_text(cls, text: str, **kwargs: Any) -> Prompt:
        return cls(({"role": "user", "content": text},), **kwargs)

    @property
    def text(self) -> str:
        """The completions-endpoint prompt."""
        if len(self.messages) == 1:
            return str(self.messages[0]["content"])
        return "\n\n".join(str(m["content"]) for m in self.messages)

    def chat_messages(self) -> list[Message]:
        """A fresh, mutable copy of the messages for a request body."""
        return [dict(m) for m in self.messages]
