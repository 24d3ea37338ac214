"""Per-user back-off after requests that fail at once, so a failing path never spins.

Why: against a dead port or a wrong model name a closed-loop user otherwise sends thousands
of identical failing requests a second, burning the client's CPU and burying the one message
that matters. Only failures that say nothing about the server's behaviour under load back
off: no connection, client errors (4xx but 429), no upstream behind a proxy (502/504). A
429/500/503 or a stream that failed after tokens is measured as it comes.
"""

from __future__ import annotations

__all__ = ["Backoff", "is_immediate", "kind_of"]

BASE_S = 0.05
CAP_S = 2.0


def is_immediate(status: int, had_token: bool, aborted: bool) -> bool:
    if aborted or had_token:
        return False
    return status == 0 or status in (502, 504) or (400 <= status < 500 and status != 429)


def kind_of(status: int, error: str) -> str:
    """A stable key for "logged once per kind": the HTTP status, else the error's head."""
    return f"HTTP {status}" if status else error.split(":", 1)[0].split("(", 1)[0].strip()


class Backoff:
    """Doubling delay from ``BASE_S`` to ``CAP_S`` while failures repeat; 0 after a success."""

    def __init__(self, base: float = BASE_S, cap: float = CAP_S) -> None:
        self.base, self.cap = base, cap
        self.streak = 0

    def next_delay(self, immediate_failure: bool) -> float:
        if not immediate_failure:
            self.streak = 0
            return 0.0
        self.streak += 1
        return min(self.cap, self.base * 2 ** (self.streak - 1))
