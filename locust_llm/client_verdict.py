"""Whether late token reads are the load generator's own doing (pure, no Locust).

Shared reads and read lateness say that tokens waited in the socket before the client read
them; they do not say why. The client's CPU share does: a process that used a small part of
its CPU was not busy with its own work, so the wait came from outside it (other processes on
a busy host descheduling it, or the server writing several tokens at once). Calling that
"client-bound" would send the user to add Locust processes, which cannot help; the run is
flagged as delayed instead, with the figures, so the numbers are still not trusted blindly.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BUSY_SHARE", "USER_STAMPS_BUSY_SHARE", "Verdict", "judge"]

# kernel stamps: late/shared reads count as the client's doing only when it used at least
# half of its CPU (the measured client-bound runs used 72-97 %, the clean ones 24-49 %)
BUSY_SHARE = 0.5
# user-space stamps cannot see late reads at all; a client this busy is the hint left
USER_STAMPS_BUSY_SHARE = 0.9
USER_STAMPS_REMEDY = (
    "(token times include its own scheduling delay). Spread the users over more Locust "
    "processes (--processes N, or more workers)."
)


@dataclass(frozen=True)
class Verdict:
    client_bound: bool | None  # None: user-space stamps and a client not busy (unknown)
    reason: str  # why client-bound, else ""
    delayed: str  # late reads not caused by the client's own load, else ""


def judge(symptoms: bool | None, symptoms_reason: str, cpu_share: float | None) -> Verdict:
    """``symptoms``: the kernel-stamp verdict (shared reads > 1 % or read lateness p99 > ITL
    p50), None in user-stamp mode; ``cpu_share``: the client's CPU over the measured window
    per Locust process (None when the window is empty)."""
    if symptoms is None:
        if cpu_share is not None and cpu_share >= USER_STAMPS_BUSY_SHARE:
            return Verdict(
                True,
                f"client-bound: the load generator used {cpu_share:.0%} of its CPU "
                + USER_STAMPS_REMEDY,
                "",
            )
        return Verdict(None, "", "")
    if not symptoms:
        return Verdict(False, "", "")
    if cpu_share is None or cpu_share >= BUSY_SHARE:
        return Verdict(True, symptoms_reason, "")
    facts = symptoms_reason.removeprefix("client-bound: ").split(". ", 1)[0]
    return Verdict(
        False,
        "",
        f"token reads were delayed ({facts}) while the load generator used only "
        f"{cpu_share:.0%} of its CPU: not its own load, so more Locust processes will not "
        "help. Other processes on this host, or a server writing several tokens at once, "
        "held them back; shared gaps are left out of ITL, and TTFT/ITL may include the delay.",
    )
