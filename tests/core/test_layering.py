"""The package's layering, checked over its imports (ast, nothing is imported).

The rules: no import cycle between modules; the pure core never imports Locust or gevent's
monkey-patching (so it runs in tests, scripts and other tools without patching the
interpreter); ``backends`` and ``emulator`` know nothing of Locust either; options are read
through ``LLMOptions`` (no ``getattr(opts, "llm_x", default)`` restating a default); and
no module is longer than a maintainer can hold in mind.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "locust_llm"
MAX_LINES = 450
# still long, split by the timestamps / stream work in progress; remove once it lands
LONG_FOR_NOW = {
    "locust_llm.emulator.server",
}
# modules that must never import locust or gevent.monkey (and everything under packages)
PURE = (
    "locust_llm.sse",
    "locust_llm.protocol",
    "locust_llm.stream",
    "locust_llm.metrics",
    "locust_llm.backends",
    "locust_llm.emulator",
    "locust_llm.report",
    "locust_llm.scenarios.spec",
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


def _imports(name: str, path: Path, top_level_only: bool = False) -> set[str]:
    """Modules ``name`` imports (relative imports resolved); with ``top_level_only``, only
    those run at import time outside functions, which are the ones that can form a cycle."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # imports under `if TYPE_CHECKING:` / try blocks at module level too
        nodes = [n for top in tree.body if not isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in ast.walk(top)]  # fmt: skip
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
    graph = {
        m: {i for i in _imports(m, p, top_level_only=True) if i in MODULES and i != m}
        for m, p in MODULES.items()
    }
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
    long = {
        m: n
        for m, p in MODULES.items()
        if (n := len(p.read_text().splitlines())) > MAX_LINES and m not in LONG_FOR_NOW
    }
    assert not long
