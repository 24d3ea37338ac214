"""Check the ``--llm-*`` values the web UI's start form sends, before Locust converts them.

Locust converts each extra form field with the *type of the option's current value*
(``int('')`` for an empty list, ``float('')`` for a cleared number) and answers a bad value
with an HTTP 500. This module runs first: it converts every ``llm_*`` field with the option's
own argparse ``type``/``choices`` and the SLO grammar, puts an option's default back for a
cleared field, and returns one message for the first bad value, so the form shows what to fix.
Pure: no Flask, no Locust; the caller hands it the form and the parser's actions.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import Any

from locust_llm.checks import SLOError, check_slos, split_slos

__all__ = ["FormError", "clean_form"]

SLO_FIELD = "llm_slo"


class FormError(ValueError):
    """A form value that cannot be used; the message names the option and the fix."""


def _flag(action: argparse.Action) -> str:
    longs = [s for s in action.option_strings if s.startswith("--")]
    return longs[0] if longs else action.dest


def _clean_one(action: argparse.Action, raw: str) -> str:
    flag = _flag(action)
    value = raw.strip()
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return "true" if value.lower() in ("true", "on", "1", "yes") else "false"
    if value == "":
        # a cleared field means "the default", never int('')
        return "" if action.default is None else str(action.default)
    if action.choices is not None and value not in action.choices:
        allowed = ", ".join(map(str, action.choices))
        raise FormError(f"{flag}: {value!r} is not one of {allowed}")
    convert = action.type
    if callable(convert):
        try:
            convert(value)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as e:
            raise FormError(f"{flag}: {e}") from None
    return value


def clean_form(form: Mapping[str, str], actions: Iterable[argparse.Action]) -> dict[str, str]:
    """The ``llm_*`` fields of ``form`` as Locust can take them; raises ``FormError``.

    SLOs arrive as one text field (comma-separated expressions); they are checked as a set
    (goodput needs a latency SLO) and passed on as that same comma-separated text.
    """
    by_dest = {a.dest: a for a in actions}
    out: dict[str, str] = {}
    for key, raw in form.items():
        if not key.startswith("llm_"):
            continue
        if key == SLO_FIELD:
            exprs = split_slos(raw)
            try:
                check_slos(exprs)
            except SLOError as e:
                raise FormError(f"--llm-slo: {e}") from None
            out[key] = ",".join(exprs)
            continue
        action = by_dest.get(key)
        if action is None:
            continue
        out[key] = _clean_one(action, raw)
    return out


def form_fields(form: Any) -> dict[str, str]:
    """A Werkzeug MultiDict as plain fields (repeated keys joined by commas, as Locust does)."""
    return {k: ",".join(form.getlist(k)) for k in form}
