"""Scenario files: TOML -> validated, matrix-expanded list of `ScenarioSpec`.

File shape:

    [defaults]                 # applies to every scenario
    backend = "emulator"
    model = "Qwen/Qwen2.5-0.5B-Instruct"
    run_time = "60s"

    [[scenario]]
    name = "sweep"
    users = [1, 10, 50]        # a list where one value is expected: one scenario per value
    lb = ["round_robin", "least_conn"]      # several lists: the cartesian product
    slo = ["ttft_p95<=800ms", "error_rate<=1%"]   # or a table: [scenario.slo] ttft_p95 = "<=800ms"

A field that takes a list by nature (serve_args, models, urls, ...) sweeps when given a list
of lists.  Expanded names are `<name>-<key>-<value>...`, or `name` may be a template such as
"lb-{lb}-u{users}".  Errors name the file, the line (found by scanning the text, TOML
parsers do not keep positions), the key, and what is allowed.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from .fields import (  # noqa: E402
    DEFAULT_RUN_TIME,
    DEFAULTS,
    FIELDS,
    FILE_KEYS,
    NAME_RE,
    ScenarioError,
    check_table,
    parse_duration,
)

__all__ = ["ScenarioError", "ScenarioSpec", "load_file", "locate", "parse_duration"]


@dataclass
class ScenarioSpec:
    """One runnable scenario after defaults, expansion and validation."""

    name: str
    index: int
    params: dict[str, Any]
    source: Path
    swept: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)

    @property
    def run_time(self) -> float | None:
        rt = self.params.get("run_time")
        if rt is None and not self.params.get("requests"):
            return DEFAULT_RUN_TIME
        return rt

    def to_json(self) -> dict[str, Any]:
        """scenario.json: what the report plots against (resolved, JSON-safe)."""
        out: dict[str, Any] = {"name": self.name, "order": self.index, "file": str(self.source)}
        out.update(self.params)
        out["run_time"] = self.run_time
        out["spawn_rate"] = self.params.get("spawn_rate") or float(self.params["users"])
        out["swept"] = sorted(self.swept)
        return out


# ---- locating keys in the text for error messages ------------------------------------------
_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"-]+)\s*\]\]?")


def locate(text: str, section: str, index: int | None, key: str | None) -> int | None:
    """1-based line of `key` inside `[defaults]` or the `index`-th `[[scenario]]` (with its
    sub-tables), or of the section header when key is None/not found."""
    lines = text.splitlines()
    start = None
    count = -1
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if not m:
            continue
        name = m.group(1)
        if section == "scenario" and line.strip().startswith("[[") and name == "scenario":
            count += 1
            if count == index:
                start = i
                break
        elif section == "defaults" and name == "defaults":
            start = i
            break
    if start is None:
        return None
    top = key.split(".")[0] if key else None
    for j in range(start + 1, len(lines)):
        m = _HEADER.match(lines[j])
        if m and not m.group(1).startswith(section + "."):
            break
        if m and top and m.group(1) == f"{section}.{top}":
            return j + 1
        if top and re.match(rf"^\s*{re.escape(top)}\s*=", lines[j]):
            return j + 1
    return start + 1


def _error(
    path: Path,
    text: str,
    section: str,
    index: int | None,
    key: str | None,
    msg: str,
    name: str | None = None,
) -> ScenarioError:
    line = locate(text, section, index, key)
    where = f"{path}:{line}" if line else str(path)
    what = "[defaults]" if section == "defaults" else f"[[scenario]] #{(index or 0) + 1}"
    if name:
        what += f" ({name})"
    if key:
        what += f" key {key!r}"
    return ScenarioError(f"{where}: {what}: {msg}")


def _validate_entry(
    entry: dict[str, Any], err: Callable[[str | None, str], ScenarioError]
) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Check every key; returns (fixed values, swept key -> list of values)."""
    fixed: dict[str, Any] = {}
    swept: dict[str, list[Any]] = {}
    for key, raw in entry.items():
        spec = FIELDS.get(key)
        if spec is None:
            near = [k for k in FIELDS if k.startswith(key[:3])]
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise err(key, f"unknown key{hint}; allowed: {', '.join(FIELDS)}")
        if key in ("name", "description", "reference", "repeat") and isinstance(raw, list):
            raise err(key, f"cannot be swept: give one value ({spec.help})")
        sweep = isinstance(raw, list) and (
            not spec.listy or (raw and all(isinstance(x, list) for x in raw))
        )
        if (
            key == "models"
            and isinstance(raw, list)
            and raw
            and all(isinstance(x, list) for x in raw)
        ):
            sweep = True
        if key == "options" and isinstance(raw, dict):
            for ok, ov in raw.items():
                if isinstance(ov, list):
                    if not ov:
                        raise err(f"options.{ok}", "an empty list sweeps nothing")
                    swept[f"options.{ok}"] = [
                        _check(err, f"options.{ok}", check_table, {ok: x})[ok] for x in ov
                    ]
            plain = {k: v for k, v in raw.items() if not isinstance(v, list)}
            fixed[key] = _check(err, key, spec.check, plain)
            continue
        if sweep:
            if not raw:
                raise err(key, "an empty list sweeps nothing: give at least one value")
            swept[key] = [_check(err, key, spec.check, x) for x in raw]
        else:
            fixed[key] = _check(err, key, spec.check, raw)
    return fixed, swept


def _check(
    err: Callable[[str | None, str], ScenarioError],
    key: str,
    check: Callable[[Any], Any],
    value: Any,
) -> Any:
    try:
        return check(value)
    except ValueError as e:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        help_ = FIELDS[key].help if key in FIELDS else ""
        raise err(key, f"got {shown}; expected {e}" + (f" ({help_})" if help_ else "")) from None


def _fmt_value(v: Any) -> str:
    s = str(v).rstrip("0").rstrip(".") if isinstance(v, float) else str(v)
    if isinstance(v, list):
        s = "_".join(str(x) for x in v)[:24]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "x"


def _locustfile(value: str, source: Path) -> Path | None:
    p = Path(value)
    cands = (
        [p]
        if p.is_absolute()
        else [source.parent / p, Path.cwd() / p, Path(__file__).resolve().parents[2] / p]
    )
    for c in cands:
        if c.is_file():
            return c.resolve()
    return None


def load_file(path: str | Path) -> list[ScenarioSpec]:
    """Parse, validate and expand one scenario file. Raises ScenarioError."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{path}: invalid TOML: {e}") from None
    unknown = set(doc) - {"defaults", "scenario", *FILE_KEYS}
    if unknown:
        k = sorted(unknown)[0]
        line = next(
            (
                i + 1
                for i, ln in enumerate(text.splitlines())
                if re.match(rf"^\s*\[*\s*{re.escape(k)}\b", ln)
            ),
            None,
        )
        raise ScenarioError(
            f"{path}{f':{line}' if line else ''}: unknown top-level key {k!r}; "
            "a scenario file has [defaults], [[scenario]] entries, [search] and gate"
        )
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ScenarioError(f"{path}: 'defaults' must be a table: [defaults]")
    entries = doc.get("scenario", [])
    if not isinstance(entries, list) or not entries:
        raise ScenarioError(f"{path}: no scenarios: add at least one [[scenario]] with a name")

    def derr(key: str | None, msg: str) -> ScenarioError:
        return _error(path, text, "defaults", None, key, msg)

    d_fixed, d_swept = _validate_entry(defaults, derr)
    specs: list[ScenarioSpec] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _error(path, text, "scenario", i, None, "must be a table")
        ename = entry.get("name") if isinstance(entry.get("name"), str) else None

        def err(key: str | None, msg: str, i: int = i, ename: str | None = ename) -> ScenarioError:
            return _error(path, text, "scenario", i, key, msg, ename)

        if "name" not in entry:
            raise err("name", 'missing: every [[scenario]] needs name = "..."')
        fixed, swept = _validate_entry(entry, err)
        base = {**DEFAULTS, **d_fixed, **fixed}
        if "options" in d_fixed and "options" in fixed:
            base["options"] = {**d_fixed["options"], **fixed["options"]}
        # a scenario's own value (fixed or swept) overrides a swept default
        sweeps = {k: v for k, v in d_swept.items() if k not in fixed}
        sweeps.update(swept)
        keys = list(sweeps)
        for combo in itertools.product(*(sweeps[k] for k in keys)) if keys else [()]:
            params = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
            chosen = dict(zip(keys, combo))
            for k, v in chosen.items():
                if k.startswith("options."):
                    params.setdefault("options", {})
                    params["options"] = {**params["options"], k.split(".", 1)[1]: v}
                else:
                    params[k] = v
            name = params["name"]
            if "{" in name:
                try:
                    name = name.format(
                        **{
                            k.replace("options.", ""): _fmt_value(v)
                            for k, v in {**params, **chosen}.items()
                        }
                    )
                except (KeyError, IndexError, ValueError) as e:
                    raise err("name", f"template {name!r} names an unknown field {e}") from None
            elif chosen:
                name += "".join(
                    f"-{k.replace('options.', '')}-{_fmt_value(v)}" for k, v in chosen.items()
                )
            if not NAME_RE.match(name):
                raise err(
                    "name",
                    f"{name!r} is not usable as a directory name; allowed: "
                    "letters, digits, '.', '_', '-' (start with a letter or digit)",
                )
            if name in seen:
                raise err(
                    "name",
                    f"scenario name {name!r} is used twice (also scenario "
                    f"#{seen[name] + 1}); names must be unique",
                )
            seen[name] = i
            _check_scenario(params, chosen, err, path)
            params["name"] = name
            specs.append(ScenarioSpec(name, len(specs), params, path, chosen))
    return specs


def _check_scenario(
    params: dict[str, Any],
    chosen: dict[str, Any],
    err: Callable[[str | None, str], ScenarioError],
    path: Path,
) -> None:
    """Cross-field rules that single-key checks cannot see."""
    backend = params["backend"]
    if backend == "external" and not params.get("urls"):
        raise err("urls", "backend 'external' needs urls = [\"http://host:port\", ...]")
    if backend != "external" and not (params.get("model") or params.get("models")):
        raise err("model", f'backend {backend!r} needs model = "NAME" or models = [...]')
    if params.get("baseline") and backend == "cpu" and (params.get("replicas") or 1) != 1:
        raise err("baseline", "baseline is one unbound replica: drop replicas")
    lf = _locustfile(params["locustfile"], path)
    if lf is None:
        raise err(
            "locustfile",
            f"{params['locustfile']!r} not found (looked next to {path.name}, "
            "in the working directory and in the locust-llm checkout)",
        )
    params["locustfile"] = str(lf)
    spawn = params.get("spawn_rate")
    if spawn is None:
        params.pop("spawn_rate", None)
    if params.get("requests") is None and params.get("run_time") is None:
        params["run_time"] = DEFAULT_RUN_TIME
    rt = params.get("run_time")
    if rt is not None and params.get("warmup", 0) >= rt:
        raise err("warmup", f"warm-up {params['warmup']:g}s is not shorter than run_time {rt:g}s")
