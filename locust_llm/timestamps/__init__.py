"""Kernel receive timestamps (``SO_TIMESTAMPNS``) for token arrival.

Three parts, each with one job: :mod:`.socket` (the timestamping socket and the mapping of
kernel stamps onto ``perf_counter``), :mod:`.install` (making a Locust client use that
socket) and :mod:`.analysis` (pure: what a request's stamps say about its tokens).
"""

from __future__ import annotations

from locust_llm.timestamps.analysis import (
    FALLBACK,
    FULL,
    KERNEL,
    StampLog,
    TokenAnalysis,
    analyze_tokens,
)
from locust_llm.timestamps.install import (
    StampReader,
    enable_kernel_timestamps,
    keep_timestamping_warm,
    kernel_timestamps_supported,
)
from locust_llm.timestamps.socket import (
    ANCILLARY_SPACE,
    CLOCK,
    SCM_TIMESTAMPNS,
    SO_TIMESTAMPNS,
    TOTALS,
    ClockMap,
    TimestampingSocket,
    parse_timestamp_cmsgs,
    timespec_to_ns,
)

__all__ = [
    "ANCILLARY_SPACE",
    "CLOCK",
    "FALLBACK",
    "FULL",
    "KERNEL",
    "SCM_TIMESTAMPNS",
    "SO_TIMESTAMPNS",
    "TOTALS",
    "ClockMap",
    "StampLog",
    "StampReader",
    "TimestampingSocket",
    "TokenAnalysis",
    "analyze_tokens",
    "enable_kernel_timestamps",
    "keep_timestamping_warm",
    "kernel_timestamps_supported",
    "parse_timestamp_cmsgs",
    "timespec_to_ns",
]
