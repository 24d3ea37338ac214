"""Client-side cancellation: which requests the client hangs up on, and when (pure).

Real clients go away mid-answer (a user closes the tab, an agent stops at a tool call); a
server must free the slot and the KV blocks at once, and its counters must say so. With
``--llm-cancel-rate P --llm-cancel-after N`` a share P of the requests is cut off by closing
the connection after N output tokens (``"32"``) or after a time from the request's send
(``"500ms"``, ``"2s"``). The draws come from a generator seeded with the seed and the
worker's index, one per request, so the same seed cancels the same positions of each
process's request sequence.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from locust_llm.workload.distributions import SpecError

__all__ = ["CancelAfter", "CancelPlan", "cancel_plan", "parse_cancel_after", "parse_cancel_rate"]

_AFTER_RE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(ms|s)?\s*$")
AFTER_HINT = 'give a token count ("32") or a time ("500ms", "2s")'


@dataclass(frozen=True)
class CancelAfter:
    """When to hang up: after ``tokens`` output tokens, or ``seconds`` after the send."""

    tokens: int | None = None
    seconds: float | None = None

    def describe(self) -> str:
        if self.tokens is not None:
            return f"after {self.tokens} token{'s' if self.tokens != 1 else ''}"
        return f"after {self.seconds * 1000:g} ms"


def parse_cancel_after(text: str) -> CancelAfter:
    """``"32"`` -> 32 tokens; ``"500ms"`` / ``"2s"`` / ``"1.5s"`` -> seconds. Raises SpecError."""
    m = _AFTER_RE.match(str(text))
    if m is None:
        raise SpecError(f"--llm-cancel-after {text!r} is not a count or a time: {AFTER_HINT}")
    value, unit = m.group(1), m.group(2)
    if unit is None:
        if "." in value or int(value) < 1:
            raise SpecError(
                f"--llm-cancel-after {text!r}: a token count must be a whole number >= 1 "
                "(or add a unit: ms, s)"
            )
        return CancelAfter(tokens=int(value))
    seconds = float(value) / (1000.0 if unit == "ms" else 1.0)
    if seconds <= 0:
        raise SpecError(f"--llm-cancel-after {text!r}: the time must be above 0")
    return CancelAfter(seconds=seconds)


class CancelPlan:
    """One decision per request: ``next()`` is the :class:`CancelAfter` to apply, or None."""

    __slots__ = ("after", "rate", "_rng")

    def __init__(self, rate: float, after: CancelAfter, seed: int = 0, stream: int = 0) -> None:
        self.rate = rate
        self.after = after
        # its own generator: cancelling must not shift the prompts or lengths the same seed
        # draws; ``stream`` (a worker's index) gives each process its own sequence
        self._rng = random.Random(f"cancel:{seed}:{stream}")

    def next(self) -> CancelAfter | None:
        if self.rate >= 1.0:
            return self.after
        return self.after if self._rng.random() < self.rate else None


def parse_cancel_rate(text: str | float | None) -> float:
    """A fraction in [0, 1] (``"0.25"``, or ``"25%"``); None or empty is 0. Raises SpecError."""
    if text is None or text == "":
        return 0.0
    raw = str(text).strip()
    try:
        rate = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        rate = -1.0
    if not 0 <= rate <= 1:
        raise SpecError(
            f"--llm-cancel-rate {text!r}: give the fraction of requests to cancel, "
            "from 0 to 1 (e.g. 0.1 or 10%)"
        )
    return rate


def cancel_plan(
    rate: str | float | None, after: str | None, seed: int = 0, stream: int = 0
) -> CancelPlan | None:
    """The plan for the options, None when nothing is cancelled; SpecError on bad values."""
    fraction = parse_cancel_rate(rate)
    when = parse_cancel_after(after) if after else None  # a typo is an error even at rate 0
    if fraction == 0:
        return None
    if when is None:
        raise SpecError(f"--llm-cancel-rate {rate} needs --llm-cancel-after: {AFTER_HINT}")
    return CancelPlan(fraction, when, seed, stream)
