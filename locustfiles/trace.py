"""Trace replay: each record of a trace sent at its recorded time (open loop).

    locust -f locustfiles/trace.py --headless -u 64 -r 64 -H http://localhost:8000 \
        --llm-trace scenarios/traces/mooncake-sample.jsonl [--llm-trace-speed 2] \
        [--llm-trace-format mooncake|azure|jsonl] [--llm-trace-loop]

Why: a production trace carries the arrival pattern and, for Mooncake, which prompt blocks
requests share (the prefix-cache hit pattern); replaying it loads the server as production
did. Users are slots (``-u`` bounds requests in flight; use ``-r`` = ``-u`` so all are there
at the start). A record due while every slot is busy goes out late, at once: its
``schedule_lag`` (sent - scheduled, ms) is in its record and the summary. The run ends with
the trace (``--llm-trace-loop``: starts it again, bound it with ``-t``). The machinery is in
``locust_llm.replay``.
"""

from __future__ import annotations

from locust_llm import replay

replay.register()


class TraceReplayUser(replay.TraceUser):
    pass
