"""What happens when a run ends: print the summary, judge the SLOs, write ``--llm-summary``,
warn about what makes the numbers doubtful, and set the process exit code."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import orjson

from locust_llm.checks import SLO_EXIT_CODE, format_rows
from locust_llm.console import format_groups, format_steps, format_summary
from locust_llm.runtime import LLMRuntime

__all__ = ["write_summary"]

log = logging.getLogger("locust_llm")

SHORT_OUTPUT_RATIO = 0.95  # warn when outputs are this much shorter than max_tokens asked


def write_summary(environment: Any, rt: LLMRuntime) -> dict[str, Any]:
    s = rt.summary()
    out = logging.getLogger("locust.stats_logger")  # Locust's plain console logger
    for line in format_summary(s):
        out.info(line)
    for line in format_steps(s.get("steps") or []):
        out.info(line)
    for line in format_groups(s):  # several request names only
        out.info(line)
    rows = s["slo"]
    if rows:
        for line in format_rows(rows):
            out.info(f"SLO {line}")
        if not all(r["passed"] for r in rows):
            environment.process_exit_code = SLO_EXIT_CODE
    if s.get("client_bound"):
        log.warning("locust-llm: %s", s["client_bound_reason"])
    elif s.get("client_read_delay"):
        log.warning("locust-llm: %s", s["client_read_delay"])
    sat = s.get("saturation") or {}
    if sat.get("detected"):
        log.warning(
            "locust-llm: SATURATED %.0fs into the measured load: %s", sat["at_s"], sat["reason"]
        )
    if (s.get("trace") or {}).get("late"):
        log.warning("locust-llm: %s", s["trace"]["warning"])
    ratio = s.get("output_tokens_vs_requested")
    if ratio is not None and ratio < SHORT_OUTPUT_RATIO:
        log.warning(
            "locust-llm: requests generated %.0f%% of the max_tokens they asked for: output "
            "lengths follow the model's EOS, so throughput and TPOT are not comparable across "
            "runs. For fixed-length outputs (as vllm bench serve --ignore-eos) pass "
            "--llm-ignore-eos%s",
            ratio * 100,
            "; it is set, so this server ignores ignore_eos" if rt.ignore_eos else "",
        )
    # requests cut off by the client (error kinds aborted, caller_timeout, cancelled) never
    # reach Locust's failures, so its exit code already leaves them out; nothing is judged by message text
    if rt.records_failed and not environment.process_exit_code:
        environment.process_exit_code = 1  # an artifact the user asked for is incomplete
    if rt.summary_path:
        path = rt.summary_path
        tmp = f"{path}.tmp"
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(orjson.dumps(s, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
            os.replace(tmp, path)
            log.info("LLM summary written to %s", path)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            log.error("cannot write --llm-summary %s (%s); the summary is printed above", path, e)
            if not environment.process_exit_code:
                environment.process_exit_code = 1
    return s
