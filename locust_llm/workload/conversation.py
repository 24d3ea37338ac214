"""Multi-turn conversations: the history grows with every model reply.

Why: chat traffic resends the whole history each turn, so prompts grow and the server's
prefix cache pays off across turns; single-turn benchmarks miss both. A ``Conversation``
is pure state (no I/O, no sleeping): the Locust user asks it for the next request, sends
it, hands back the reply, and sleeps ``think_time()`` before the next turn.

Lengths: from a dataset entry (its user turns in order, ``max_tokens`` of each turn = the
token count of the dataset's reference reply, as `vllm bench serve` does for ShareGPT) or
synthetic (number of turns, user-turn and reply lengths from distributions).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

from .datasets import Dataset, Entry
from .distributions import Distribution, parse_length, parse_seconds
from .prompt import Message, Prompt
from .synthetic import fit_text
from .tokens import TokenCounter, WordCounter

__all__ = ["Turn", "Conversation", "ConversationSource"]


@dataclass(frozen=True)
class Turn:
    """One user turn to send and the output length to ask for (``None``: user default)."""

    content: str
    max_tokens: int | None = None


class Conversation:
    """Holds the messages of one conversation and yields its next user turn.

    Usage::

        while (prompt := conv.next_request()) is not None:
            result = user.chat(prompt.chat_messages(), max_tokens=prompt.max_tokens)
            conv.add_reply(result.text)
            gevent.sleep(conv.think_time())
    """

    def __init__(
        self,
        turns: list[Turn],
        *,
        system: list[Message] | None = None,
        think_time: Distribution | None = None,
        rng: random.Random | None = None,
        tokenizer: TokenCounter | None = None,
        conv_id: int = 0,
    ) -> None:
        if not turns:
            raise ValueError("a conversation needs at least one turn")
        self.turns = list(turns)
        self.messages: list[Message] = [dict(m) for m in (system or [])]
        self.think = think_time
        self.rng = rng if rng is not None else random.Random(0)
        self.tokenizer = tokenizer if tokenizer is not None else WordCounter()
        self.conv_id = conv_id
        # unique across processes and runs (conv_id counts per source): X-Session-Id
        self.session_id = uuid.uuid4().hex
        self._next = 0
        self._awaiting_reply = False

    @property
    def turn(self) -> int:
        """Index of the next turn to send (== number of turns sent so far)."""
        return self._next

    @property
    def done(self) -> bool:
        return self._next >= len(self.turns) and not self._awaiting_reply

    def next_request(self) -> Prompt | None:
        """Append the next user turn and return the full request; ``None`` when finished.

        Raises ``RuntimeError`` if the previous turn's reply was not added: sending two
        user turns in a row would not be a conversation.
        """
        if self._awaiting_reply:
            raise RuntimeError("add_reply() the previous turn's answer before the next request")
        if self._next >= len(self.turns):
            return None
        turn = self.turns[self._next]
        self.messages.append({"role": "user", "content": turn.content})
        self._next += 1
        self._awaiting_reply = True
        tokens = sum(self.tokenizer.count(str(m["content"])) for m in self.messages)
        return Prompt(
            tuple(dict(m) for m in self.messages),
            prompt_tokens=tokens,
            max_tokens=turn.max_tokens,
            source=f"conversation {self.conv_id} turn {self._next}",
        )

    def add_reply(self, text: str) -> None:
        """Record the model's reply so it is part of the next turn's history."""
        if not self._awaiting_reply:
            raise RuntimeError("add_reply() without a pending request")
        self.messages.append({"role": "assistant", "content": text})
        self._awaiting_reply = False

    def think_time(self) -> float:
        """Seconds to wait before the next turn (0 without a think-time distribution)."""
        return float(self.think.sample(self.rng)) if self.think is not None else 0.0


class ConversationSource:
    """Hands out new ``Conversation`` s, seeded: from a dataset or synthetic."""

    def __init__(
        self,
        *,
        dataset: Dataset | None = None,
        turns: str | int | Distribution = 3,
        prompt_tokens: str | int | Distribution = 128,
        max_tokens: str | int | Distribution | None = None,
        think_time: str | float | Distribution | None = None,
        max_turns: int | None = None,
        seed: int = 0,
        tokenizer: TokenCounter | None = None,
    ) -> None:
        self.dataset = dataset
        self.turns = parse_length(turns)
        self.prompt_tokens = parse_length(prompt_tokens)
        self.max_tokens = parse_length(max_tokens) if max_tokens is not None else None
        self.think = parse_seconds(think_time) if think_time is not None else None
        self.max_turns = max_turns
        self.tokenizer = tokenizer if tokenizer is not None else WordCounter()
        self._rng = random.Random(f"conversations:{seed}")
        self._count = 0

    def _from_entry(self, entry: Entry) -> tuple[list[Message], list[Turn]]:
        system: list[Message] = []
        turns: list[Turn] = []
        pending: str | None = None
        for m in entry.messages:
            if m["role"] == "system" and not turns and pending is None:
                system.append(m)
            elif m["role"] == "user":
                if pending is not None:
                    turns.append(Turn(pending, entry.max_tokens))
                pending = m["content"]
            elif m["role"] == "assistant" and pending is not None:
                reply = max(1, self.tokenizer.count(m["content"]))
                turns.append(Turn(pending, entry.max_tokens or reply))
                pending = None
        if pending is not None:
            turns.append(Turn(pending, entry.max_tokens))
        return system, turns

    def next(self) -> Conversation:
        rng = self._rng
        self._count += 1
        system: list[Message] = []
        if self.dataset is not None:
            system, turns = self._from_entry(self.dataset.sample(rng))
        else:
            turns = []
            for _ in range(self.turns.sample(rng)):
                text, _ = fit_text(rng, self.prompt_tokens.sample(rng), self.tokenizer)
                turns.append(Turn(text, self.max_tokens.sample(rng) if self.max_tokens else None))
        if self.max_turns:
            turns = turns[: self.max_turns]
        conv_rng = random.Random(rng.getrandbits(64))
        return Conversation(
            turns,
            system=system,
            think_time=self.think,
            rng=conv_rng,
            tokenizer=self.tokenizer,
            conv_id=self._count,
        )
