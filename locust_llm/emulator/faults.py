"""Which fault, if any, a request gets: from ``X-Return-Error`` or a seeded coin flip.

Pure decision logic; the server carries the fault out. Kinds:
``429 500 503 400`` (an error response before any byte of the stream), ``midstream`` (half the
tokens, then ``data: {"error": ...}`` and ``[DONE]`` in the 200 stream), ``truncate`` (half the
tokens, then the connection closes without ``[DONE]`` or the chunked terminator), ``reset``
(half the tokens, then a TCP RST), ``dead`` (the engine "dies": this and every later request
and /health answer 503, as vLLM does after an EngineDeadError).
"""

from __future__ import annotations

import random

HTTP_FAULTS = {"400", "401", "404", "429", "500", "503"}
STREAM_FAULTS = {"midstream", "truncate", "reset"}

MESSAGES = {
    400: "This model's maximum context length is exceeded (emulated fault).",
    401: "Unauthorized (emulated fault).",
    404: "The model does not exist (emulated fault).",
    429: "Too many requests (emulated fault).",
    500: "Internal server error (emulated fault).",
    503: "Service unavailable (emulated fault).",
}


class FaultInjector:
    """Seeded: the same seed and request order give the same faults."""

    def __init__(self, rate: float, types: list[str], seed: int) -> None:
        self.rate = rate
        self.types = list(types)
        self.rng = random.Random(seed * 7919 + 17)

    def decide(self, header: str | None) -> str | None:
        """Fault kind for one request: the header wins; else ``rate`` picks one of ``types``."""
        if header:
            h = header.strip().lower()
            if h in HTTP_FAULTS or h in STREAM_FAULTS or h == "dead":
                return h
            return None
        if self.rate > 0 and self.types and self.rng.random() < self.rate:
            return self.rng.choice(self.types)
        return None
