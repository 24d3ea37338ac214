"""The fields of a scenario file: what each key accepts, its help, and the defaults.

One table (:data:`FIELDS`) drives validation, error messages and ``locust-llm run --help``'s
field list, so a new field is one line here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from locust_llm.backends.names import DEFAULT_LB, LB_METHODS
from locust_llm.backends.names import STACK_BACKENDS as BACKENDS

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
DEFAULT_RUN_TIME = 60.0


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message says where and what is allowed."""


# ---- value checkers: return the normalised value or raise ValueError(what is allowed) -----
def _str(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ValueError("a non-empty string")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("true or false")
    return v


def _pos_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError("an integer >= 1")
    return v


def _pos_num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        raise ValueError("a number > 0")
    return float(v)


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError("one of " + ", ".join(repr(o) for o in options))
        return v

    return check


_DUR = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(v: Any) -> float:
    """Seconds from `90`, `"90s"`, `"2m"`, `"1h30m"`, `"500ms"` (Locust's -t spelling)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
        return float(v)
    if isinstance(v, str):
        text = v.strip().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
        parts = _DUR.findall(text)
        if parts and "".join(a + b for a, b in parts) == text:
            mult = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
            return sum(float(a) * mult[b] for a, b in parts)
    raise ValueError('a duration: seconds (30) or a string like "30s", "2m", "1h30m"')


def _duration(v: Any) -> float:
    return parse_duration(v)


def _args(v: Any) -> list[str]:
    if isinstance(v, str):
        import shlex

        return shlex.split(v)
    if isinstance(v, list) and all(isinstance(x, (str, int, float)) for x in v):
        return [str(x) for x in v]
    raise ValueError('a list of strings (["--max-num-seqs", "50"]) or one string')


def _str_list(v: Any) -> list[str]:
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return list(v)
    raise ValueError("a list of strings")


def _models(v: Any) -> list[dict[str, Any]]:
    if isinstance(v, list) and v and all(isinstance(x, dict) and "name" in x for x in v):
        return [dict(x) for x in v]
    raise ValueError('a list of tables with a name: [{name = "m1", replicas = 2}, ...]')


def _slo(v: Any) -> list[str]:
    from locust_llm.checks import SLOError, parse_slo

    if isinstance(v, dict):
        exprs = [f"{k}{val}" if isinstance(val, str) else f"{k}<={val}" for k, val in v.items()]
    elif isinstance(v, list) and all(isinstance(x, str) for x in v):
        exprs = list(v)
    elif isinstance(v, str):
        exprs = [v]
    else:
        raise ValueError(
            'a list of expressions ["ttft_p95<=800ms"] or a table ttft_p95 = "<=800ms"'
        )
    for e in exprs:
        try:
            parse_slo(e)
        except SLOError as err:
            raise ValueError(str(err)) from None
    return exprs


def check_table(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ValueError("a table")
    for k, x in v.items():
        if not isinstance(x, (str, int, float, bool)):
            raise ValueError(f"a table of plain values ({k!r} is {type(x).__name__})")
    return dict(v)


def _env(v: Any) -> dict[str, str]:
    if not isinstance(v, dict) or not all(isinstance(x, (str, int, float)) for x in v.values()):
        raise ValueError('a table of strings: {NAME = "value"}')
    return {str(k): str(x) for k, x in v.items()}


def _kill(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict) or "at" not in v:
        raise ValueError('a table {at = "20s", replica = "NAME"} (replica defaults to the last)')
    out = {"at": parse_duration(v["at"])}
    if "replica" in v:
        out["replica"] = _str(v["replica"])
    return out


@dataclass(frozen=True)
class Field:
    check: Callable[[Any], Any]
    help: str
    listy: bool = False  # takes a list by nature: sweeps only on a list of lists


FIELDS: dict[str, Field] = {
    "name": Field(_str, "scenario name (letters, digits, . _ -), may use {field} templates"),
    "description": Field(_str, "free text shown in the report"),
    "backend": Field(_choice(BACKENDS), "where the servers come from"),
    "model": Field(_str, "served model name (and vllm serve MODEL)"),
    "models": Field(_models, "several models: [{name, replicas, tp, serve_args}]", listy=True),
    "urls": Field(_str_list, "external backend URLs", listy=True),
    "tp": Field(_pos_int, "tensor-parallel size per replica"),
    "replicas": Field(_pos_int, "replica count (cpu: total over NUMA nodes)"),
    "lb": Field(_choice(LB_METHODS), "nginx balancing policy"),
    "baseline": Field(_bool, "cpu backend: one unbound replica"),
    "vllm_cmd": Field(_str, "executable replacing `vllm serve`"),
    "serve_args": Field(_args, "extra `vllm serve` flags for every replica", listy=True),
    "emulator_args": Field(_args, "extra --emu-* flags, used only on the emulator", listy=True),
    "ready_timeout": Field(_duration, "how long replicas may take to become healthy"),
    "locustfile": Field(_str, "path, relative to the TOML file or the working directory"),
    "users": Field(_pos_int, "concurrent users (closed loop)"),
    "spawn_rate": Field(_pos_num, "users started per second (default: all at once)"),
    "rate": Field(_pos_num, "open-loop cap: requests per second over all users (--ips)"),
    "run_time": Field(_duration, "test duration"),
    "requests": Field(_pos_int, "stop after this many requests (-i)"),
    "warmup": Field(_duration, "seconds excluded from metrics at the start"),
    "max_tokens": Field(_pos_int, "max_tokens per request"),
    "prompt_tokens": Field(_pos_int, "synthetic prompt length in tokens"),
    "ignore_eos": Field(_bool, "generate exactly max_tokens"),
    "timeout": Field(_duration, "longest silence tolerated in a stream"),
    "slo": Field(_slo, "SLO expressions, all must pass", listy=True),
    "options": Field(check_table, "extra --llm-* options: {name = value}"),
    "locust_args": Field(_args, "extra raw Locust arguments", listy=True),
    "env": Field(_env, "environment variables for the Locust process"),
    "kill_replica": Field(_kill, 'fault injection: {at = "20s", replica = "NAME"}'),
    "reference": Field(_bool, "the scenario others are compared with in the report"),
    "repeat": Field(_pos_int, "run the scenario N times: mean, CV and 95% CI across runs"),
}
# file-level keys, read by locust_llm.scenarios.search (search) and .gate (gate)
FILE_KEYS = ("search", "gate")
DEFAULTS: dict[str, Any] = {
    "backend": "emulator",
    "locustfile": "locustfiles/chat.py",
    "users": 1,
    "tp": 1,
    "lb": DEFAULT_LB,
    "warmup": 0.0,
    "ready_timeout": 900.0,
}
