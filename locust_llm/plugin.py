"""Compatibility imports: the Locust glue now lives in one module per job.

``options`` (the ``--llm-*`` options), ``runtime`` (per-Environment state), ``listeners``
(Locust events; importing this module registers them), ``records`` (the JSONL writer),
``console`` and ``quit`` (what is printed and written at the end), ``credentials``.
"""

from __future__ import annotations

import logging

from locust_llm.console import format_steps, format_summary
from locust_llm.credentials import redact
from locust_llm.listeners import CHECK_ONLY_ENV, runtime
from locust_llm.locust_stats import log_many
from locust_llm.options import add_arguments
from locust_llm.preflight import preflight
from locust_llm.quit import write_summary
from locust_llm.runtime import LLMRuntime

__all__ = [
    "CHECK_ONLY_ENV",
    "LLMRuntime",
    "add_arguments",
    "format_steps",
    "format_summary",
    "log_many",
    "preflight",
    "redact",
    "runtime",
    "write_summary",
]

log = logging.getLogger("locust_llm")
