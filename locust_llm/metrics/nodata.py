"""Why a run measured nothing: a run with no completed request has no throughput or latency
to show, and zeros would read as a collapse (or pass an SLO) that never happened."""

from __future__ import annotations

from typing import Any

__all__ = ["no_data_reason"]


def no_data_reason(summary: dict[str, Any]) -> str | None:
    """None when at least one request completed; else one line saying why none did."""
    if summary.get("completed"):
        return None
    failed = summary.get("failed") or 0
    aborted = summary.get("aborted") or 0
    cancelled = summary.get("cancelled") or 0
    if cancelled and not failed and not aborted:
        return (
            f"no request completed: the client cancelled all {cancelled} "
            "(--llm-cancel-rate below 1, or a later --llm-cancel-after, lets some finish)"
        )
    if not failed and not aborted:
        return "no request was sent or finished (run longer, or check the host and users)"
    if aborted and not failed:
        return (
            f"no request completed: all {aborted} were still streaming when the run ended "
            "(run longer, or give in-flight requests a stop timeout with --stop-timeout)"
        )
    if failed and not aborted:
        return f"no request completed: all {failed} failed (see the errors)"
    return (
        f"no request completed: {failed} failed and {aborted} were cut off at the end "
        "(see the errors; run longer or set --stop-timeout)"
    )
