"""Parsing what the servers under test expose: vLLM's ``/metrics`` and nginx's ``stub_status``.

Pure functions shared by the scenario runner's scraper (``server_metrics.jsonl``) and the web
UI's (LLM tab). vLLM's Prometheus text goes through ``prometheus_client``'s parser (escaping and
label rules a regex would get wrong); ``stub_status`` is nginx's fixed three-line page.
"""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["COUNTERS", "GAUGES", "parse_stub_status", "parse_vllm_metrics"]

# sample names without the "vllm:" prefix
GAUGES = ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc")
COUNTERS = (
    "num_preemptions_total",
    "prompt_tokens_total",
    "generation_tokens_total",
    "request_success_total",
)
_ALIASES = {"gpu_cache_usage_perc": "kv_cache_usage_perc"}  # vLLM < 0.10 name
_STUB = re.compile(
    r"Active connections:\s*(\d+).*?\n\s*(\d+)\s+(\d+)\s+(\d+)\s*\n"
    r"\s*Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)",
    re.S,
)
_STUB_KEYS = ("active", "accepts", "handled", "requests", "reading", "writing", "waiting")


def parse_vllm_metrics(text: str) -> dict[str, float]:
    """The gauges and counters above, summed over label sets (a replica may serve several
    model names), except ``kv_cache_usage_perc``, a fraction, which takes the maximum."""
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            name = s.name.removeprefix("vllm:")
            name = _ALIASES.get(name, name)
            if name == "kv_cache_usage_perc":
                out[name] = max(out.get(name, 0.0), float(s.value))
            elif name in GAUGES or name in COUNTERS:
                out[name] = out.get(name, 0.0) + float(s.value)
    return out


def parse_stub_status(text: str) -> dict[str, int]:
    """nginx ``stub_status`` page -> {active, accepts, handled, requests, reading, writing,
    waiting}; ValueError when the text is not one."""
    m = _STUB.search(text)
    if not m:
        raise ValueError(f"not a stub_status page: {text[:80]!r}")
    return dict(zip(_STUB_KEYS, (int(x) for x in m.groups()), strict=True))
