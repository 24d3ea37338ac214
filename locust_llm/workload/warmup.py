"""Warm-up: which requests to leave out of the metrics.

Why: the first seconds of a run measure connection setup, cold caches and users still
spawning, not the steady state; `vllm bench serve` and guidellm both exclude a warm-up.
A request is in the warm-up if it *started* within the first ``seconds`` of the run or
was among the first ``requests`` started (either condition suffices; 0 disables it).
Starting time, not finishing time, decides, so a long request begun in warm-up never
leaks into the measured window.
"""

from __future__ import annotations

import itertools

__all__ = ["in_warmup", "Warmup"]


def in_warmup(
    t_start: float, ordinal: int, *, start: float, seconds: float = 0.0, requests: int = 0
) -> bool:
    """True if the request (start time ``t_start``, 0-based start ``ordinal``) is warm-up."""
    return (seconds > 0 and t_start < start + seconds) or ordinal < requests


class Warmup:
    """Counts request starts and classifies each; one per process (ordinals are local).

    With K processes the request-count threshold is split so the whole run excludes about
    ``requests`` in total: pass ``share=K`` and each process excludes ``ceil(requests/K)``.
    """

    def __init__(
        self, seconds: float = 0.0, requests: int = 0, *, start: float | None = None, share: int = 1
    ) -> None:
        if seconds < 0 or requests < 0:
            raise ValueError("warm-up seconds and requests must be >= 0")
        if share < 1:
            raise ValueError("share must be >= 1")
        self.seconds = float(seconds)
        self.requests = -(-int(requests) // share)
        self.start = start
        self._ordinals = itertools.count()

    @property
    def enabled(self) -> bool:
        return self.seconds > 0 or self.requests > 0

    def begin(self, start: float | None) -> None:
        """Set the run's start time and restart counting (``None``: the next request's start,
        as after a stats reset)."""
        self.start = start
        self._ordinals = itertools.count()

    def classify(self, t_start: float) -> bool:
        """Call once per request as it starts; True if it belongs to the warm-up."""
        ordinal = next(self._ordinals)
        if self.start is None:
            self.start = t_start
        return in_warmup(
            t_start, ordinal, start=self.start, seconds=self.seconds, requests=self.requests
        )
