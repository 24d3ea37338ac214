"""How long the ``/llm/...`` endpoints take with 10 minutes (or more) of per-second history.

Fills a Collector with ``--seconds`` of synthetic windows (``--rps`` requests/s, ``--tokens``
output tokens each, lognormal TTFT/ITL), mounts the web extension on a real Locust
Environment's web UI (server not started) and times each endpoint through Flask's test
client. Before every timed call one more second of requests arrives (untimed) and the
memoisation cache is cleared, as for a poll of a running test in which requests keep
finishing. ``first ms`` is the first call, which folds the whole history once (a browser
opening the tab late in a run); the median and p95 are of the calls after it.

    .venv/bin/python benchmarks/bench_web.py [--seconds 600] [--rps 20] [--tokens 128]

Target: every endpoint < 50 ms (median and p95 of the repetitions); how the cost grows with
the history is the ratio of two runs' figures (``--seconds 600`` and ``--seconds 3600``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

import gevent.monkey

gevent.monkey.patch_all()

from locust import events  # noqa: E402
from locust.env import Environment  # noqa: E402

import locust_llm.web as llm_web  # noqa: E402
from locust_llm.metrics.record import LLMResult  # noqa: E402
from locust_llm.plugin import runtime  # noqa: E402
from locust_llm.users import OpenAIChatUser  # noqa: E402

POLL = "/llm/live?epoch&seq"  # the dashboard's poll: only the rows changed since its last one
ENDPOINTS = (
    "/llm/summary",
    "/llm/intervals",
    "/llm/live",
    POLL,
    "/llm/slo",
    "/llm/server",
    "/llm/metrics",
    "/llm/intervals.csv",
    "/llm/summary.json",
    "/stats/requests",
)


class _User(OpenAIChatUser):
    host = "http://127.0.0.1:1"


def fill(
    collector, seconds: int, rps: int, tokens: int, seed: int = 0, t0: int | None = None
) -> int:
    rng = random.Random(seed)
    t0 = int(time.time()) - seconds if t0 is None else t0
    n = 0
    for s in range(seconds):
        for i in range(rps):
            ttft = rng.lognormvariate(4.0, 0.4)
            itl = [rng.lognormvariate(3.0, 0.3) for _ in range(tokens - 1)]
            r = LLMResult(name="bench", model="m", t_start=t0 + s + i / rps, ttft=ttft,
                          ttft_content=ttft, itl=itl, e2e=ttft + sum(itl), stream_closed=None,
                          prompt_tokens=128, output_tokens=tokens, token_chunks=tokens,
                          finish_reason="length", status=200)  # fmt: skip
            if i == 0 and s % 7 == 0:
                r.error = "HTTP 503: <b>queue full</b>"
            collector.add(r)
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--rps", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--limit-ms", type=float, default=50.0)
    a = ap.parse_args(argv)
    sys.argv[1:] = []  # Locust parses the command line again when the web UI is set up

    env = Environment(user_classes=[_User], events=events)
    env.create_local_runner()
    env.create_web_ui("127.0.0.1", 0, delayed_start=True)
    rt = runtime(env)
    llm_web.setup_web_ui(env)
    from locust_llm.checks import parse_slo

    rt.slos = [parse_slo("ttft_p95<=800ms"), parse_slo("itl_p99<=60ms")]
    t = time.perf_counter()
    n = fill(rt.collector, a.seconds, a.rps, a.tokens)
    print(f"filled {len(rt.collector.windows)} windows, {n} requests "
          f"in {time.perf_counter() - t:.1f} s")  # fmt: skip
    client = env.web_ui.app.test_client()
    data = env._llm_web
    worst = 0.0
    print(f"{'endpoint':<26}{'first ms':>10}{'median ms':>10}{'p95 ms':>10}{'max ms':>10}"
          f"{'bytes':>10}")  # fmt: skip
    nxt = int(time.time())
    for path in ENDPOINTS:
        times = []
        size = 0
        first = None
        query = "/llm/live"
        for _ in range(a.repeat + 1):
            fill(rt.collector, 1, a.rps, a.tokens, seed=nxt, t0=nxt)  # a second more arrived
            nxt += 1
            data.invalidate()  # measure the uncached cost
            t = time.perf_counter()
            resp = client.get(query if path == POLL else path)
            body = resp.get_data()
            ms = (time.perf_counter() - t) * 1000
            if first is None:
                first = ms
            else:
                times.append(ms)
            assert resp.status_code == 200, (path, resp.status_code)
            size = len(body)
            if path == POLL:
                d = resp.get_json()
                query = f"/llm/live?epoch={d['epoch']}&seq={d['seq']}"
        times.sort()
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
        med = statistics.median(times)
        worst = max(worst, p95)
        print(f"{path:<26}{first:>10.2f}{med:>10.2f}{p95:>10.2f}{times[-1]:>10.2f}{size:>10}")
    ok = worst < a.limit_ms
    print(f"worst p95 {worst:.2f} ms: {'OK' if ok else 'OVER'} the {a.limit_ms:g} ms target")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
