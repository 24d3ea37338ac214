"""`locust-llm` command: a thin dispatcher; each subcommand lives in the module that owns it."""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "run": ("locust_llm.scenarios", "run scenario files: bring up backends, load-test, report"),
    "search": (
        "locust_llm.scenarios.search",
        "find the highest load meeting every SLO: bracket, then bisect",
    ),
    "report": ("locust_llm.report", "rebuild or merge reports from finished runs"),
    "plan": ("locust_llm.backends.cli", "print a backend plan and the exact commands it runs"),
    "emulate": ("locust_llm.emulator.__main__", "run the vLLM-compatible emulator"),
}


def _usage() -> str:
    lines = ["usage: locust-llm {" + ",".join(SUBCOMMANDS) + "} ...", "", "subcommands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"locust-llm: unknown subcommand {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
