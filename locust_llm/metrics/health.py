"""Whether the load generator itself distorted the token times: the one client-health verdict.

Pure (numbers in, verdict out; no sockets, no Locust). Two steps, both here:

1. symptoms, from kernel stamps: too many tokens shared a read (their separate arrival times
   are lost) or reads ran later than a typical inter-token gap (:func:`symptoms`, applied to
   a window's counts by :func:`client_health`);
2. cause, from the client's CPU share and its wait for a CPU (:func:`judge`). Shared reads
   and read lateness say that tokens waited in the socket before the client read them; they
   do not say why. A process that used a small part of its CPU was not busy with its own
   work, so the wait came from outside it (other processes on a busy host descheduling it,
   which its run-queue wait shows, or the server writing several tokens at once). Calling
   that "client-bound" would send the user to add Locust processes, which cannot help; the
   run is flagged as delayed instead, with the figures, so the numbers are still not
   trusted blindly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from locust_llm.metrics.collector import Window

__all__ = [
    "BUSY_SHARE",
    "CLIENT_BOUND_REMEDY",
    "RUNQUEUE_SHARE",
    "SHARED_LIMIT",
    "USER_STAMPS_BUSY_SHARE",
    "Verdict",
    "client_health",
    "judge",
    "symptoms",
]

#: share of tokens (other than a request's first) that may share a read before it is a symptom
SHARED_LIMIT = 0.01
CLIENT_BOUND_REMEDY = (
    "the load generator is CPU-bound: it reads tokens late enough that several arrive in one "
    "read (their separate arrival times are lost) or later than a typical inter-token gap. "
    "Spread the users over more Locust processes (`--processes N`, or more workers) or run "
    "fewer users per worker."
)


def symptoms(
    shared_share: float,
    lateness_p99_ms: float,
    itl_p50_ms: float,
    shared_limit: float = SHARED_LIMIT,
) -> tuple[bool, str]:
    """Late reads seen in kernel stamps: shared share > 1 % or read lateness p99 > ITL p50.

    Returns (flag, message); the message names the trigger and the remedy, or is empty. NaN
    figures (no samples) are no symptom.
    """
    reasons = []
    if shared_share == shared_share and shared_share > shared_limit:
        reasons.append(f"{shared_share:.1%} of tokens shared a read (limit {shared_limit:.0%})")
    if (
        lateness_p99_ms == lateness_p99_ms
        and itl_p50_ms == itl_p50_ms
        and lateness_p99_ms > itl_p50_ms
    ):
        reasons.append(f"read lateness p99 {lateness_p99_ms:.2f} ms > ITL p50 {itl_p50_ms:.2f} ms")
    if not reasons:
        return False, ""
    return True, "client-bound: " + "; ".join(reasons) + ". " + CLIENT_BOUND_REMEDY


def client_health(w: Window, s: dict[str, Any]) -> dict[str, Any]:
    """Kernel-timestamp health: own-stamp share, shared reads, fallbacks, the symptoms verdict.

    In user-space mode these are None: without kernel stamps the client cannot tell how late
    it read a token (the CPU share in ``meta`` is then the only hint).
    """
    if not w.stamped_tokens:
        return {
            "timestamps": "user",
            "client_own_stamp": None,
            "client_own_stamp_raw": None,
            "client_shared_share": None,
            "client_late_shared_share": None,
            "stamp_fallbacks": None,
            "itl_excluded": w.itl_excluded,
            "client_bound": None,
            "client_bound_reason": "",
        }
    n = w.stamped_tokens
    expected = w.first_shared + w.end_shared  # shared by how the server writes, not late
    late_shared = (w.shared_tokens - expected) / n
    bound, reason = symptoms(late_shared, s["p99_read_lateness_ms"], s["median_itl_ms"])
    return {
        "timestamps": "kernel",
        # the role chunk vLLM writes together with the first token, and the stream's end
        # written right after the last one, share their reads by the server's doing, not the
        # client's: they count as own here (the raw share is below)
        "client_own_stamp": min((w.own_stamps + expected) / n, 1.0),
        "client_own_stamp_raw": w.own_stamps / n,
        "client_shared_share": w.shared_tokens / n,
        "client_late_shared_share": late_shared,
        "stamp_fallbacks": w.stamp_fallbacks,
        "itl_excluded": w.itl_excluded,
        "client_bound": bound,
        "client_bound_reason": reason,
    }


# kernel stamps: late/shared reads count as the client's doing only when it used at least
# half of its CPU (the measured client-bound runs used 72-97 %, the clean ones 24-49 %)
BUSY_SHARE = 0.5
# user-space stamps cannot see late reads at all; a client this busy is the hint left
USER_STAMPS_BUSY_SHARE = 0.9
USER_STAMPS_REMEDY = (
    "(token times include its own scheduling delay). Spread the users over more Locust "
    "processes (--processes N, or more workers)."
)


# waiting for a CPU this long (share of the run) is the host's doing: a healthy 2-core run
# with vLLM beside Locust waits ~10 %, a starved one (the server's processes outranking the
# load generator) 85 %
RUNQUEUE_SHARE = 0.25
STARVED_REMEDY = (
    "Other processes on this host held its CPU, so more Locust processes will not help: give "
    "Locust cores of its own (`taskset`/`numactl` for the servers and for Locust) or run it "
    "on another host."
)


@dataclass(frozen=True)
class Verdict:
    client_bound: bool | None  # None: user-space stamps and a client not busy (unknown)
    reason: str  # why client-bound, else ""
    delayed: str  # late reads not caused by the client's own load, else ""


def judge(
    symptoms: bool | None,
    symptoms_reason: str,
    cpu_share: float | None,
    runqueue_share: float | None = None,
) -> Verdict:
    """``symptoms``: the kernel-stamp verdict (shared reads > 1 % or read lateness p99 > ITL
    p50), None in user-stamp mode; ``cpu_share``: the client's CPU over the measured window
    per Locust process (None when the window is empty); ``runqueue_share``: the time its
    main thread waited for a CPU over the same window (None where the kernel does not say).

    A client that waited for a CPU a quarter of the run or more was starved, not busy: with
    kernel stamps its late reads are named as such; with user-space stamps, which cannot see
    late reads, the wait itself is the sign that token times include it.
    """
    starved = runqueue_share is not None and runqueue_share >= RUNQUEUE_SHARE
    if symptoms is None:
        if cpu_share is not None and cpu_share >= USER_STAMPS_BUSY_SHARE:
            return Verdict(
                True,
                f"client-bound: the load generator used {cpu_share:.0%} of its CPU "
                + USER_STAMPS_REMEDY,
                "",
            )
        if starved:
            return Verdict(
                None,
                "",
                f"the load generator waited for a CPU {runqueue_share:.0%} of the time (run "
                "queue), and user-space stamps put that wait into TTFT and ITL. " + STARVED_REMEDY,
            )
        return Verdict(None, "", "")
    if not symptoms:
        return Verdict(False, "", "")
    if cpu_share is None or cpu_share >= BUSY_SHARE:
        return Verdict(True, symptoms_reason, "")
    facts = symptoms_reason.removeprefix("client-bound: ").split(". ", 1)[0]
    if starved:
        return Verdict(
            False,
            "",
            f"token reads were delayed ({facts}) while the load generator used only "
            f"{cpu_share:.0%} of its CPU and waited for one {runqueue_share:.0%} of the time "
            f"(run queue). {STARVED_REMEDY} Shared gaps are left out of ITL; TTFT and the "
            "stream's end may include the delay.",
        )
    return Verdict(
        False,
        "",
        f"token reads were delayed ({facts}) while the load generator used only "
        f"{cpu_share:.0%} of its CPU: not its own load, so more Locust processes will not "
        "help. Other processes on this host, or a server writing several tokens at once, "
        "held them back; shared gaps are left out of ITL, and TTFT/ITL may include the delay.",
    )
