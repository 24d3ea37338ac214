"""Make ``locust -f LOCUSTFILE --help`` list the ``--llm-*`` options.

Locust prints ``--help`` before it imports the locustfile, so options registered by the
plugin when the locustfile imports it never show there. The package installs a ``.pth`` file
(``locust_llm-help.pth``) whose one line calls :func:`maybe_install` at interpreter start; it
does nothing (and imports nothing) unless the process is ``locust`` asked for help, and then
registers every ``--llm-*`` option on the parser Locust builds for the help text.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["wants_help", "maybe_install"]


def wants_help(argv: list[str]) -> bool:
    """``locust ... --help`` / ``-h`` (the console script, or ``python -m locust``)."""
    if not argv:
        return False
    prog = os.path.basename(argv[0])
    is_locust = prog in ("locust", "locust.exe") or argv[0].endswith(
        os.path.join("locust", "__main__.py")
    )
    return is_locust and any(a in ("-h", "--help") for a in argv[1:])


def _add_all(parser: Any, **_kw: Any) -> None:
    from locust_llm.options import add_arguments

    add_arguments(parser)


def maybe_install(argv: list[str]) -> None:
    if not wants_help(argv):
        return
    from locust import events

    events.init_command_line_parser.add_listener(_add_all)
