"""The console block printed at quit, from a summary dict: laid out as ``vllm bench serve``
prints its own, so the two outputs can be compared line by line."""

from __future__ import annotations

from typing import Any

__all__ = ["format_summary", "format_steps", "format_groups"]


def format_summary(s: dict[str, Any]) -> list[str]:
    """The block ``vllm bench serve`` prints, so numbers can be compared line by line."""
    w = 50
    lines = ["{s:{c}^{n}}".format(s=" LLM Benchmark Result (locust-llm) ", n=w, c="=")]

    def row(label: str, value: Any, fmt: str = "{:<10.2f}") -> None:
        # "{:<40} {:<10}" as vllm bench serve prints, so lines diff cleanly against its output
        lines.append(f"{label:<40} " + (fmt.format(value) if value is not None else "n/a"))

    row("Successful requests:", s["completed"], "{:<10}")
    row("Failed requests:", s["failed"], "{:<10}")
    row("Aborted requests:", s["aborted"], "{:<10}")
    if s.get("cancelled"):  # only with --llm-cancel-*: vLLM's block has no such line
        row("Cancelled by the client:", s["cancelled"], "{:<10}")
    if s.get("no_data_reason"):  # the zeros below measured nothing: say why
        lines.append(f"NO DATA: {s['no_data_reason']}")
    if s.get("midstream_errors"):
        row("Completed with a mid-stream error:", s["midstream_errors"], "{:<10}")
    load = s.get("meta") or {}
    if load.get("max_concurrency") is not None:
        row("Maximum request concurrency:", load["max_concurrency"], "{:<10}")
    if isinstance(load.get("request_rate"), (int, float)):
        row("Request rate configured (RPS):", load["request_rate"])
    trace = s.get("trace")
    if trace:
        row("Trace requests sent:", trace["sent"], "{:<10}")
        row("Trace records (one pass):", trace["records"], "{:<10}")
        row("Trace rate requested (req/s):", trace["requested_rate"])
        row("Trace rate achieved (req/s):", trace["achieved_rate"])
        row("Schedule lag P50 (ms):", s.get("p50_schedule_lag_ms"))
        row("Schedule lag P99 (ms):", s.get("p99_schedule_lag_ms"))
    row("Benchmark duration (s):", s["duration"])
    row("Total input tokens:", s["total_input_tokens"], "{:<10}")
    row("Total generated tokens:", s["total_output_tokens"], "{:<10}")
    if s.get("prefix_cache_hit_rate") is not None:  # the server sent prompt_tokens_details
        row("Cached prompt tokens:", s["total_cached_tokens"], "{:<10}")
        row("Prefix cache hit rate (%):", 100 * s["prefix_cache_hit_rate"])
    for name, pc in (s.get("server_prefix_cache") or {}).items():
        if pc.get("hit_rate") is not None:
            row(f"Server prefix cache hit rate, {name} (%):", 100 * pc["hit_rate"])
    row("Request throughput (req/s):", s["request_throughput"])
    if s.get("request_goodput") is not None:
        row("Request goodput (req/s):", s["request_goodput"])
    row("Output token throughput (tok/s):", s["output_throughput"])
    row("Peak output token throughput (tok/s):", s["max_output_tokens_per_s"])
    row("Total token throughput (tok/s):", s["total_token_throughput"])
    pool = s.get("pooling")
    # a run of pooling requests only has no token stream: its latencies are in the pooling block
    sections = (
        ("ttft", "Time to First Token"),
        ("tpot", "Time per Output Token (excl. 1st token)"),
        ("itl", "Inter-token Latency"),
        ("e2el", "End-to-end Latency"),
    )
    if pool and not (s.get("count_ttft") or s.get("count_e2el")):
        sections = ()
    for key, title in sections:
        lines.append("{s:{c}^{n}}".format(s=title, n=w, c="-"))
        row(f"Mean {key.upper()} (ms):", s[f"mean_{key}_ms"])
        row(f"Median {key.upper()} (ms):", s[f"median_{key}_ms"])
        row(f"P99 {key.upper()} (ms):", s[f"p99_{key}_ms"])
    if pool:  # embeddings / rerank requests: no token stream, one latency each
        lines.append("{s:{c}^{n}}".format(s="Pooling (embeddings, rerank)", n=w, c="-"))
        row("Pooling requests:", pool["requests"], "{:<10}")
        row("Items (inputs or documents):", pool["total_items"], "{:<10}")
        row("Items per second:", pool["items_per_s"])
        row("Input tokens per second:", pool["input_tokens_per_s"])
        row("Mean latency (ms):", pool["mean_latency_ms"])
        row("Median latency (ms):", pool["median_latency_ms"])
        row("P99 latency (ms):", pool["p99_latency_ms"])
    lines.append("=" * w)
    return lines


def format_steps(steps: list[dict[str, Any]]) -> list[str]:
    """One line per step of a stepped sweep, under the summary block: the curve the run
    measured (each step's own window, so its throughput is that user count's)."""
    if not steps:
        return []

    def num(v: Any, fmt: str) -> str:
        return fmt.format(v) if isinstance(v, (int, float)) else "n/a"

    lines = [
        "{s:{c}^{n}}".format(s=" Sweep steps (measured windows) ", n=50, c="-"),
        f"{'users':>6}{'req/s':>9}{'out tok/s':>11}{'TTFT p50':>10}"
        f"{'TTFT p99':>10}{'ITL p50':>9}{'failed':>8}   (latencies in ms)",
    ]
    for st in steps:
        lines.append(
            f"{num(st.get('users'), '{:>6}')}"
            f"{num(st.get('request_throughput'), '{:>9.2f}')}"
            f"{num(st.get('output_throughput'), '{:>11.1f}')}"
            f"{num(st.get('median_ttft_ms'), '{:>10.1f}')}"
            f"{num(st.get('p99_ttft_ms'), '{:>10.1f}')}"
            f"{num(st.get('median_itl_ms'), '{:>9.2f}')}"
            f"{num(st.get('failed'), '{:>8}')}"
        )
    lines.append("=" * 50)
    return lines


def format_groups(s: dict[str, Any], kind: str = "name") -> list[str]:
    """A short per-request-name block (only when the run had several names): each name's
    requests and latencies, so a mix of task types is not read as one distribution."""
    groups = s.get(f"by_{kind}") or {}
    if not groups:
        return []

    def num(v: Any, fmt: str) -> str:
        return fmt.format(v) if isinstance(v, (int, float)) else "n/a"

    width = max(12, *(len(k) for k in groups))
    lines = [
        "{s:{c}^{n}}".format(s=f" By request {kind} ", n=50, c="-"),
        f"{kind:<{width}}{'ok':>7}{'failed':>7}{'TTFT p50':>10}{'TTFT p99':>10}{'ITL p50':>9}"
        f"{'TPOT p50':>10}   (ms)",
    ]
    for key, g in groups.items():
        lines.append(
            f"{key:<{width}}{num(g.get('completed'), '{:>7}')}{num(g.get('failed'), '{:>7}')}"
            f"{num(g.get('median_ttft_ms'), '{:>10.1f}')}{num(g.get('p99_ttft_ms'), '{:>10.1f}')}"
            f"{num(g.get('median_itl_ms'), '{:>9.2f}')}{num(g.get('median_tpot_ms'), '{:>10.2f}')}"
        )
    lines.append("=" * 50)
    return lines
