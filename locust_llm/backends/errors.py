"""The one exception the backends raise.

Every message says what was wrong *and* what to do about it, because the person reading it is
usually in the middle of a load test and not in this code.
"""

from __future__ import annotations


class BackendError(RuntimeError):
    """A backend stack could not be planned, started or verified."""
