"""The LLM tab in Locust's web UI, ``/llm/...`` JSON endpoints and ``/llm/metrics``.

The plugin's ``init`` listener calls :func:`setup_web_ui`: on the process that serves the web
UI (local runner or master — workers have no ``web_ui``) it mounts the ``/llm`` blueprint, the tab, and starts
the server-metrics scraper when there is anything to scrape (``--llm-metrics-url`` or the
backend stack ``environment.llm.stack``). See ``routes.py`` for why the tab is a native table
plus an embedded page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from locust_llm.web.scrape import ServerScraper, Target

__all__ = ["setup_web_ui", "server_targets"]


def server_targets(environment: Any) -> list[Target]:
    """``--llm-metrics-url`` values, else the running stack's replicas and nginx status."""
    rt = getattr(environment, "llm", None)
    urls = list(rt.options.metrics_url or []) if rt is not None else []
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
    """Mount everything on ``environment.web_ui`` (idempotent per environment); the runtime
    ``environment.llm`` must exist (the plugin's ``init`` listener creates it first)."""
    if getattr(environment, "web_ui", None) is None or getattr(environment, "_llm_web", None):
        return
    from locust_llm.web.routes import install

    scraper = ServerScraper(
        targets=lambda: server_targets(environment),
        access_log=lambda: _access_log(environment),
    )
    data = install(environment, scraper)
    environment._llm_web = data
    environment._llm_scraper = scraper
    scraper.start()

    def on_reset(**_kw: Any) -> None:
        data.invalidate()
        scraper.reset_counters()

    def on_quit(environment: Any = None, **_kw: Any) -> None:
        scraper.stop()

    environment.events.reset_stats.add_listener(on_reset)
    environment.events.test_start.add_listener(on_reset)
    environment.events.quitting.add_listener(on_quit)
