"""vLLM's own benchmark client as a reference: its request function, imported, in a closed loop.

    .venv-vllm/bin/python benchmarks/vllm_client.py --url http://127.0.0.1:PORT --users 64 \
        --seconds 5 --max-tokens 1024

Runs ``--users`` concurrent streams, each sending ``async_request_openai_chat_completions``
(from ``vllm.benchmarks``, exactly what ``vllm bench serve`` runs per request) back to back for
``--seconds``, and prints one JSON line: token chunks received (``len(itl) + 1`` per
successful request, the count vLLM's ITL/TTFT figures rest on), wall and process CPU seconds.
Runs under vLLM's interpreter (aiohttp, vLLM installed), not the project's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time


async def _run(url: str, users: int, seconds: float, max_tokens: int, model: str) -> dict:
    import aiohttp
    from vllm.benchmarks.lib.endpoint_request_func import (
        RequestFuncInput,
        async_request_openai_chat_completions,
    )

    inp = RequestFuncInput(
        prompt="bench",
        api_url=url.rstrip("/") + "/v1/chat/completions",
        prompt_len=1,
        output_len=max_tokens,
        model=model,
        ignore_eos=True,
    )
    counts = {"tokens": 0, "requests": 0, "failed": 0}
    conn = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=conn, trust_env=False) as session:
        started = time.perf_counter()
        cpu0 = time.process_time()
        end = started + seconds

        async def worker() -> None:
            while time.perf_counter() < end:
                out = await async_request_openai_chat_completions(inp, session)
                if out.success:
                    counts["tokens"] += len(out.itl) + 1
                    counts["requests"] += 1
                else:
                    counts["failed"] += 1

        # no new request after --seconds; those in flight run to their end and count (a
        # cancelled one would lose its tokens: vLLM's function returns nothing until it ends)
        await asyncio.gather(*(worker() for _ in range(users)))
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    return {**counts, "wall_s": wall, "cpu_s": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--max-tokens", type=int, default=1024)
    ap.add_argument("--model", default="locust-llm/emulator")
    a = ap.parse_args()
    print(json.dumps(asyncio.run(_run(a.url, a.users, a.seconds, a.max_tokens, a.model))))


if __name__ == "__main__":
    main()
