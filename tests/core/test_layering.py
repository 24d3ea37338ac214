"""The package's layering, checked over its imports (ast, nothing is imported).

The rules: no import cycle between modules (counting imports inside functions: deferring
an import hides a cycle from the interpreter, not from the reader); the pure core never imports Locust or gevent's
monkey-patching (so it runs in tests, scripts and other tools without patching the
interpreter); ``backends`` and ``emulator`` know nothing of Locust either; options are read
through ``LLMOptions`` (no ``getattr(opts, "llm_x", default)`` restating a default);
no module is longer than a maintainer can hold in mind; and docs/ARCHITECTURE.md's module
map names every module, and only modules that exist.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "locust_llm"
MAX_LINES = 450
# still long; the test below fails once an exception is no longer needed
LONG_FOR_NOW: set[str] = set()
# modules that must never import locust or gevent.monkey (and everything under packages)
PURE = (
    "locust_llm.sse",
    "locust_llm.protocol",
    "locust_llm.stream",
    "locust_llm.pooling",
    "locust_llm.metrics",
    "locust_llm.checks",
    "locust_llm.errors",
    "locust_llm.backoff",
    "locust_llm.credentials",
    "locust_llm.load_meta",
    "locust_llm.servermetrics",
    "locust_llm.backends",
    "locust_llm.emulator",
    "locust_llm.telemetry",
    "locust_llm.report",
    "locust_llm.scenarios",  # runs Locust as a subprocess, never imports it
    "locust_llm.workload",
)
# modules of pure packages that are Locust glue by design: the workload's per-process
# helpers, and the rounding onto Locust's response-time grid (users.py, the streaming loop
# being reworked, imports it from there; it moves out of metrics once that work lands)
GLUE = {"locust_llm.workload.locust_options", "locust_llm.metrics.locust_grid"}
LOCUST = ("locust", "gevent.monkey")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Modules ``name`` imports anywhere in it (relative imports resolved): at module level,
    under ``if TYPE_CHECKING:`` and inside functions. An import deferred into a function
    still ties the two modules together, so it counts for cycles as well."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            out.add(mod)
            for a in node.names:  # `from . import vllm` imports a module
                if f"{mod}.{a.name}" in MODULES:
                    out.add(f"{mod}.{a.name}")
    return out


def _in(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_no_import_cycle_between_modules():
    graph = {m: {i for i in _imports(m, p) if i in MODULES and i != m} for m, p in MODULES.items()}
    # a package's __init__ importing its own submodules is how packages work, not a cycle
    for m in graph:
        graph[m] = {i for i in graph[m] if not (i.startswith(m + ".") or m.startswith(i + "."))}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append([*stack[stack.index(n) :], n])
            elif n not in state:
                visit(n, [*stack, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_pure_modules_never_import_locust():
    bad = {
        m: sorted(i for i in _imports(m, p) if _in(i, LOCUST))
        for m, p in MODULES.items()
        if _in(m, PURE) and m not in GLUE
    }
    assert not {m: i for m, i in bad.items() if i}


def test_backends_and_emulator_know_nothing_of_the_locust_glue():
    glue = ("locust_llm.plugin", "locust_llm.runtime", "locust_llm.listeners",
            "locust_llm.users", "locust_llm.options", "locust_llm.web")  # fmt: skip
    bad = {
        m: sorted(i for i in _imports(m, p) if _in(i, glue))
        for m, p in MODULES.items()
        if _in(m, ("locust_llm.backends", "locust_llm.emulator"))
    }
    assert not {m: i for m, i in bad.items() if i}


def test_options_are_read_through_llm_options():
    """``getattr(opts, "llm_x", default)`` restates a default ``LLMOptions`` holds."""
    found = []
    for m, p in MODULES.items():
        if m == "locust_llm.options":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "getattr"
                and len(node.args) == 3
                and isinstance(node.args[1], ast.Constant)
                and str(node.args[1].value).startswith("llm_")
                and not isinstance(node.func, ast.Attribute)
            ):
                found.append(f"{m}:{node.lineno} {node.args[1].value}")
    # environment attributes set by load shapes are not options
    found = [f for f in found if not f.endswith((" llm_phases", " llm_open_loop"))]
    assert not found


def test_no_module_over_450_lines():
    lines = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    assert not {m: n for m, n in lines.items() if n > MAX_LINES and m not in LONG_FOR_NOW}
    # an exception that is no longer long is removed, so it cannot hide a new growth
    assert not {m for m in LONG_FOR_NOW if lines.get(m, 0) <= MAX_LINES}


def test_architecture_lists_every_module_and_no_stale_one():
    """docs/ARCHITECTURE.md's module map names every module of the package, and every
    ``locust_llm/...`` path it names exists."""
    doc = (PKG.parent / "docs" / "ARCHITECTURE.md").read_text()
    listed = set(re.findall(r"`(locust_llm/[\w/]+\.py)`", doc))
    files = {str(p.relative_to(PKG.parent)) for p in PKG.rglob("*.py")}
    assert not files - listed, "modules missing from docs/ARCHITECTURE.md"
    assert not listed - files, "docs/ARCHITECTURE.md names modules that do not exist"
