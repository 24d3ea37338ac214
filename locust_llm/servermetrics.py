"""What the servers under test expose, read once for every scraper: vLLM's ``/metrics``, nginx's
``stub_status`` and nginx's JSON access log (one parser per format).

Shared by the scenario runner's scraper (``server_metrics.jsonl``), the web UI's (LLM tab) and
the backend tests; the parsers are pure, :func:`fetch` is the one HTTP read. vLLM's Prometheus text goes through ``prometheus_client``'s parser (escaping and
label rules a regex would get wrong); ``stub_status`` is nginx's fixed three-line page.
"""

from __future__ import annotations

import re
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "COUNTERS",
    "GAUGES",
    "PrefixCacheTotals",
    "Target",
    "fetch",
    "increase",
    "parse_access_log",
    "parse_stub_status",
    "parse_vllm_metrics",
    "prefix_cache_by_replica",
    "upstream_counts",
]


@dataclass(frozen=True)
class Target:
    """One endpoint to scrape: a replica's ``/metrics`` (kind "vllm") or nginx's status page."""

    name: str
    url: str
    kind: str = "vllm"  # "vllm" | "nginx"
    model: str | None = None  # the model the replica serves, when known


def fetch(url: str, timeout: float) -> str:
    """GET one of our own scrape targets (127.0.0.1 replicas and nginx) as text."""
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (our own targets)
        return r.read().decode("utf-8", "replace")


def parse_access_log(text: str | bytes) -> list[dict]:
    """nginx's JSON access log (one object per line); malformed or partial lines are skipped."""
    out = []
    for line in text.splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


def upstream_counts(entries: Sequence[dict], final_only: bool = True) -> Counter:
    """Requests per upstream address (``$upstream_addr``); ``"a, b"`` when nginx retried on
    another upstream: ``final_only`` counts only the last, the one that answered."""
    c: Counter = Counter()
    for e in entries:
        addrs = [a.strip() for a in str(e.get("upstream", "")).split(",") if a.strip()]
        if not addrs:
            continue
        for a in addrs[-1:] if final_only else addrs:
            c[a] += 1
    return c


# sample names without the "vllm:" prefix
GAUGES = ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc")
COUNTERS = (
    "num_preemptions_total",
    "prompt_tokens_total",
    "generation_tokens_total",
    "request_success_total",
    "prefix_cache_queries_total",  # prompt tokens looked up in the prefix cache
    "prefix_cache_hits_total",  # of which found cached
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


def increase(prev: float | None, cur: float) -> float:
    """A counter's growth between two samples, as Prometheus' ``increase()`` counts it: a drop
    means the server restarted, and its counter grew from 0 to ``cur`` since."""
    if prev is None:
        return 0.0
    return cur - prev if cur >= prev else cur


@dataclass
class PrefixCacheTotals:
    """vLLM's prefix-cache counters of one replica, grown over a stretch of samples.

    ``hit_rate`` is vLLM's own ratio (``prefix_cache_hits / prefix_cache_queries``, in prompt
    tokens), the one number both the LLM tab and the report show.
    """

    queries: float = 0.0
    hits: float = 0.0
    _last: tuple[float, float] | None = None

    def add(self, sample: dict) -> None:
        """Take one scraped sample (``parse_vllm_metrics``' keys); others are skipped."""
        q, h = sample.get("prefix_cache_queries_total"), sample.get("prefix_cache_hits_total")
        if not isinstance(q, (int, float)) or not isinstance(h, (int, float)):
            return
        if self._last is not None:
            self.queries += increase(self._last[0], q)
            self.hits += increase(self._last[1], h)
        self._last = (float(q), float(h))

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.queries if self.queries > 0 else None

    def as_dict(self) -> dict:
        return {"queries": self.queries, "hits": self.hits, "hit_rate": self.hit_rate}


def prefix_cache_by_replica(samples: Sequence[dict]) -> dict[str, dict]:
    """Per replica, its prefix-cache queries, hits and hit rate over ``samples`` (lines of
    ``server_metrics.jsonl``: ``{"replica": name, ...counters}``), in time order; replicas
    whose vLLM exports no prefix-cache counters are left out."""
    totals: dict[str, PrefixCacheTotals] = {}
    for s in sorted(samples, key=lambda x: x.get("t") or 0.0):
        name = s.get("replica")
        if name is None or "prefix_cache_queries_total" not in s:
            continue
        totals.setdefault(str(name), PrefixCacheTotals()).add(s)
    return {k: v.as_dict() for k, v in totals.items()}
