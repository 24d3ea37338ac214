"""Values for Locust's own stats rows, on Locust's own rounding grid.

Locust keeps percentiles as counts of rounded response times (2 significant digits) but
min, max and the average exact, and clamps the median into [min, max]: a row of requests
that all took ~1310.5 ms shows median 1310.54 beside p95 1300, the median above the p99.
Logging every value already rounded as Locust rounds it puts all columns of a row on one
grid, so a row is self-consistent; the exact values are in the summary and the LLM tab.
"""

from __future__ import annotations

import locust.stats

__all__ = ["on_locust_grid"]


def on_locust_grid(value: float) -> float:
    """``value`` rounded as Locust rounds response times for its percentiles."""
    bucket = getattr(locust.stats, "bucket_response_time", None)
    if bucket is not None:
        return float(bucket(value))
    if value < 100:  # Locust's own rule where the helper is missing
        return float(round(value))
    digits = len(str(int(value))) - 2
    return float(round(value, -digits))
