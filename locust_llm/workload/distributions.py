"""Seeded length and time distributions parsed from compact spec strings.

Why: prompt/output lengths and think times must vary like real traffic (length variance
changes batching and KV pressure), yet two runs with the same seed must send the same
workload so deployments can be compared. A spec string fits in one CLI option value.

Grammar (one spec = one distribution)::

    SPEC   := NUMBER | KIND [":" ARGS]
    KIND   := fixed | uniform | normal | lognormal
    ARGS   := ARG ((":" | ",") ARG)*
    ARG    := NUMBER | NAME "=" NUMBER          (positional first, then named)

    128                          fixed 128
    fixed:128                    fixed 128
    uniform:64:256               uniform integers/values in [64, 256] (both ends included)
    normal:128:32                mean 128, standard deviation 32
    lognormal:128:0.5            lognormal with *mean* 128 and sigma 0.5 (see below)
    lognormal:mean=128,sigma=0.5 the same, named
    normal:128:32,min=16,max=512 every kind accepts optional min= / max= clip bounds

Parameters per kind (positional order): fixed ``value``; uniform ``low high``; normal
``mean std``; lognormal ``mean sigma`` where ``sigma`` is the standard deviation of the
underlying normal and ``mu = ln(mean) - sigma**2 / 2`` so the distribution's mean is
``mean`` (what people expect "lognormal around 128" to mean).

Samples are drawn from a ``random.Random`` (stdlib: per-draw cost well under a microsecond,
no numpy call overhead inside user greenlets). Lengths are rounded to integers and
clipped to >= 1; seconds are clipped to >= 0.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "Distribution",
    "SpecError",
    "parse_distribution",
    "parse_length",
    "parse_seconds",
]


class SpecError(ValueError):
    """A distribution spec string could not be parsed or is out of range."""


_PARAMS: dict[str, tuple[str, ...]] = {
    "fixed": ("value",),
    "uniform": ("low", "high"),
    "normal": ("mean", "std"),
    "lognormal": ("mean", "sigma"),
}
_NAME_RE = re.compile(r"^[a-z_]+$")


@dataclass(frozen=True)
class Distribution:
    """One parsed distribution. ``integer`` distributions draw lengths (int >= 1)."""

    kind: str
    params: tuple[float, ...]
    integer: bool = True
    low: float | None = None
    high: float | None = None
    spec: str = ""

    # -- drawing --------------------------------------------------------------------------
    def _raw(self, rng: random.Random) -> float:
        p = self.params
        if self.kind == "fixed":
            return p[0]
        if self.kind == "uniform":
            if self.integer:
                return rng.randint(math.ceil(p[0]), math.floor(p[1]))
            return rng.uniform(p[0], p[1])
        if self.kind == "normal":
            return rng.gauss(p[0], p[1])
        if self.kind == "lognormal":
            mean, sigma = p
            return rng.lognormvariate(math.log(mean) - sigma * sigma / 2.0, sigma)
        raise AssertionError(self.kind)  # pragma: no cover - guarded by the parser

    def sample(self, rng: random.Random) -> int | float:
        """One draw: an int >= 1 for lengths, a float >= 0 for seconds."""
        x = self._raw(rng)
        if self.low is not None and x < self.low:
            x = self.low
        if self.high is not None and x > self.high:
            x = self.high
        if self.integer:
            return max(1, int(round(x)))
        return max(0.0, float(x))

    def samples(self, n: int, seed: int | None = 0) -> list[int | float]:
        """``n`` draws from a fresh generator seeded with ``seed`` (reproducible)."""
        rng = random.Random(seed)
        return [self.sample(rng) for _ in range(n)]

    def iter(self, seed: int | None = 0) -> Iterator[int | float]:
        """Endless reproducible stream of draws."""
        rng = random.Random(seed)
        while True:
            yield self.sample(rng)

    @property
    def mean(self) -> float:
        """Mean before rounding/clipping (for reports and sanity checks)."""
        p = self.params
        if self.kind == "fixed":
            return p[0]
        if self.kind == "uniform":
            return (p[0] + p[1]) / 2.0
        return p[0]

    def __str__(self) -> str:
        return self.spec or f"{self.kind}:{':'.join(f'{v:g}' for v in self.params)}"


def _number(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"{spec!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise SpecError(f"{spec!r}: {text!r} is not a finite number")
    return value


def parse_distribution(
    spec: str | int | float | Distribution, *, integer: bool = True
) -> Distribution:
    """Parse ``spec`` (see the module docstring for the grammar).

    ``integer=True`` for token lengths (rounded, >= 1), ``False`` for seconds (>= 0).
    Raises ``SpecError`` with the offending spec and a hint on every malformed input.
    """
    if isinstance(spec, Distribution):
        return spec
    if isinstance(spec, bool):
        raise SpecError(f"{spec!r} is not a distribution spec")
    if isinstance(spec, (int, float)):
        spec = f"{spec:g}" if isinstance(spec, float) else str(spec)
    text = spec.strip()
    if not text:
        raise SpecError("empty distribution spec; expected e.g. '128' or 'uniform:64:256'")
    head, _, rest = text.partition(":")
    kind = head.strip().lower()
    if kind not in _PARAMS:
        try:
            value = _number(head, text)
        except SpecError:
            kinds = ", ".join(_PARAMS)
            raise SpecError(
                f"{text!r}: unknown distribution {head!r}; expected a number or one of: {kinds}"
            ) from None
        if rest:
            raise SpecError(
                f"{text!r}: a bare number takes no arguments; did you mean 'fixed:{head}'?"
            )
        kind, positional, named = "fixed", [value], {}
    else:
        positional, named = [], {}
        args = [a.strip() for a in re.split(r"[:,]", rest)] if rest.strip() else []
        for arg in args:
            if not arg:
                raise SpecError(f"{text!r}: empty argument")
            if "=" in arg:
                name, _, val = arg.partition("=")
                name = name.strip().lower()
                if not _NAME_RE.match(name):
                    raise SpecError(f"{text!r}: bad argument name {name!r}")
                if name in named:
                    raise SpecError(f"{text!r}: argument {name!r} given twice")
                named[name] = _number(val.strip(), text)
            else:
                if named:
                    raise SpecError(f"{text!r}: positional argument {arg!r} after a named one")
                positional.append(_number(arg, text))
    names = _PARAMS[kind]
    if len(positional) > len(names):
        raise SpecError(
            f"{text!r}: {kind} takes {len(names)} parameter(s) ({', '.join(names)}), got {len(positional)}"
        )
    values: dict[str, float] = dict(zip(names, positional))
    low = named.pop("min", None)
    high = named.pop("max", None)
    for name, val in named.items():
        if name not in names:
            raise SpecError(
                f"{text!r}: {kind} has no parameter {name!r}; expected {', '.join(names)}, min, max"
            )
        if name in values:
            raise SpecError(f"{text!r}: parameter {name!r} given both by position and by name")
        values[name] = val
    missing = [n for n in names if n not in values]
    if missing:
        raise SpecError(f"{text!r}: {kind} needs {', '.join(names)}; missing {', '.join(missing)}")
    params = tuple(values[n] for n in names)
    _validate(kind, params, text, integer)
    if low is not None and high is not None and low > high:
        raise SpecError(f"{text!r}: min={low:g} is greater than max={high:g}")
    return Distribution(kind, params, integer, low, high, text)


def _validate(kind: str, p: tuple[float, ...], text: str, integer: bool) -> None:
    floor = 1 if integer else 0
    what = "a length (>= 1)" if integer else "a duration (>= 0)"
    if kind == "fixed" and p[0] < floor:
        raise SpecError(f"{text!r}: fixed value {p[0]:g} is not {what}")
    if kind == "uniform":
        if p[0] > p[1]:
            raise SpecError(f"{text!r}: uniform low {p[0]:g} is greater than high {p[1]:g}")
        if p[1] < floor:
            raise SpecError(f"{text!r}: uniform range lies below {floor}")
        if integer and math.ceil(p[0]) > math.floor(p[1]):
            raise SpecError(f"{text!r}: uniform range holds no integer")
    if kind == "normal" and p[1] < 0:
        raise SpecError(f"{text!r}: normal std must be >= 0, got {p[1]:g}")
    if kind == "lognormal":
        if p[0] <= 0:
            raise SpecError(f"{text!r}: lognormal mean must be > 0, got {p[0]:g}")
        if p[1] < 0:
            raise SpecError(f"{text!r}: lognormal sigma must be >= 0, got {p[1]:g}")


def parse_length(spec: str | int | Distribution) -> Distribution:
    """A token-length distribution (draws are ints >= 1)."""
    return parse_distribution(spec, integer=True)


def parse_seconds(spec: str | int | float | Distribution) -> Distribution:
    """A duration distribution in seconds, e.g. think time (draws are floats >= 0)."""
    return parse_distribution(spec, integer=False)
