"""Weighted, seeded choice of the model per request (multi-model mix).

Why: one endpoint serving several models (or a router in front of several replicas) sees
a traffic mix, not one model; the mix must be reproducible to compare balancers.

Spec: ``"llama=2,qwen=1,mistral=1"`` (weights need not sum to 1; a name without ``=w``
has weight 1). Names may contain ``/`` and ``:`` (``meta-llama/Llama-3-8B``).
"""

from __future__ import annotations

import bisect
import itertools
import math
import random

__all__ = ["ModelMix", "parse_model_mix"]


class ModelMix:
    """Models with weights; ``choose(rng)`` picks one with probability weight / total."""

    def __init__(self, weights: dict[str, float]) -> None:
        if not weights:
            raise ValueError("a model mix needs at least one model")
        for name, w in weights.items():
            if not name:
                raise ValueError("empty model name in the mix")
            if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
                raise ValueError(f"model {name!r}: weight must be a finite number >= 0, got {w!r}")
        total = float(sum(weights.values()))
        if total <= 0:
            raise ValueError("model mix weights sum to 0")
        self.models = list(weights)
        self.weights = [float(weights[m]) for m in self.models]
        self._cum = list(itertools.accumulate(self.weights))
        self.total = total

    def probability(self, model: str) -> float:
        return self.weights[self.models.index(model)] / self.total

    def choose(self, rng: random.Random) -> str:
        i = bisect.bisect_right(self._cum, rng.random() * self.total)
        return self.models[min(i, len(self.models) - 1)]

    def __repr__(self) -> str:
        return "ModelMix(" + ",".join(f"{m}={w:g}" for m, w in zip(self.models, self.weights)) + ")"


def parse_model_mix(spec: str) -> ModelMix:
    """Parse ``"a=2,b=1"`` into a ``ModelMix``; ``ValueError`` with the bad part on error."""
    weights: dict[str, float] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"model mix {spec!r}: empty entry")
        name, sep, w = part.rpartition("=") if "=" in part else (part, "", "1")
        name = name.strip()
        try:
            weight = float(w) if sep or w == "1" else 1.0
        except ValueError:
            raise ValueError(
                f"model mix {spec!r}: weight {w!r} of {name!r} is not a number"
            ) from None
        if name in weights:
            raise ValueError(f"model mix {spec!r}: model {name!r} listed twice")
        weights[name] = weight
    try:
        return ModelMix(weights)
    except ValueError as exc:
        raise ValueError(f"model mix {spec!r}: {exc}") from None
