"""The LLM tab in Locust's web UI, ``/llm/...`` JSON endpoints and ``/llm/metrics``.

Importing this module registers an ``init`` listener on Locust's global ``events`` (as
``locust_llm.plugin`` does for its own): on the process that serves the web UI (local runner
or master — workers have no ``web_ui``) it mounts the ``/llm`` blueprint, the tab, and starts
the server-metrics scraper when there is anything to scrape (``--llm-metrics-url`` or the
backend stack ``environment.llm.stack``). See ``routes.py`` for why the tab is a native table
plus an embedded page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from locust import events

from locust_llm.web.scrape import ServerScraper, Target

__all__ = ["setup_web_ui", "server_targets"]

_STATE: dict[str, Any] = {}


def server_targets(environment: Any) -> list[Target]:
    """``--llm-metrics-url`` values, else the running stack's replicas and nginx status."""
    rt = getattr(environment, "llm", None)
    opts = environment.parsed_options
    urls = list(getattr(opts, "llm_metrics_url", None) or []) if opts is not None else []
    out = [Target(name=u, url=u, kind="vllm") for u in urls]
    stack = getattr(rt, "stack", None)
    if stack is not None:
        if not urls:
            out += [Target(name=r.name, url=r.metrics_url, kind="vllm") for r in stack.replicas]
        status = stack.nginx_status_url
        if status:
            out.append(Target(name="nginx", url=status, kind="nginx"))
    return out


def _access_log(environment: Any) -> Path | None:
    stack = getattr(getattr(environment, "llm", None), "stack", None)
    if stack is None or not stack.nginx_status_url:
        return None
    return Path(stack.access_log)


def setup_web_ui(environment: Any) -> None:
    """Mount everything on ``environment.web_ui`` (idempotent per environment)."""
    if getattr(environment, "web_ui", None) is None or getattr(environment, "_llm_web", None):
        return
    from locust_llm.plugin import runtime
    from locust_llm.web.routes import install

    runtime(environment)  # make sure environment.llm exists, whatever the listener order
    scraper = ServerScraper(
        targets=lambda: server_targets(environment),
        access_log=lambda: _access_log(environment),
    )
    data = install(environment, scraper)
    environment._llm_web = data
    scraper.start()
    _STATE["scraper"] = scraper
    _STATE["data"] = data


@events.init_command_line_parser.add_listener
def _on_parser(parser: Any, **_kw: Any) -> None:
    from locust_llm.web.routes import remember_parser

    remember_parser(parser)


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    setup_web_ui(environment)


@events.reset_stats.add_listener
def _on_reset(**_kw: Any) -> None:
    data = _STATE.get("data")
    if data is not None:
        data.invalidate()


@events.quitting.add_listener
def _on_quit(**_kw: Any) -> None:
    scraper = _STATE.pop("scraper", None)
    if scraper is not None:
        scraper.stop()
