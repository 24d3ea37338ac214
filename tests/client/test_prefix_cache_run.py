"""A real `locust` run against the built-in emulator with prompt_tokens_details on: the summary's
cached-token total and hit rate are the records' own sums, and the console shows them."""

from __future__ import annotations

import json
from pathlib import Path

from .test_locust_runs import run

LOCUSTFILE = """
from locust import constant, task

from locust_llm import OpenAIChatUser

SHARED = "You are a terse assistant for load tests. " * 12


class CachedUser(OpenAIChatUser):
    wait_time = constant(0)
    n = 0

    @task
    def ask(self) -> None:
        CachedUser.n += 1
        self.chat(SHARED + f"Question {CachedUser.n % 5}?")
"""


def test_summary_hit_rate_is_the_records_sums(tmp_path: Path):
    lf = tmp_path / "cached.py"
    lf.write_text(LOCUSTFILE)
    records, summary = tmp_path / "r.jsonl", tmp_path / "s.json"
    p = run(
        ["-f", str(lf), "--headless", "-u", "3", "-r", "3", "-t", "3s", "--llm-max-tokens", "4",
         "--llm-ignore-eos", "--llm-serve-args",
         "--emu-ttft-ms 20 --emu-itl-ms 2 --enable-prompt-tokens-details",
         "--llm-records", str(records), "--llm-summary", str(summary)]
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    recs = [json.loads(x) for x in records.read_text().splitlines()]
    s = json.loads(summary.read_text())
    done = [r for r in recs if r["error"] is None and not r["warmup"] and not r["aborted"]]
    reported = [r for r in done if r["cached_tokens"] is not None]
    assert len(reported) == len(done) > 10
    cached = sum(r["cached_tokens"] for r in reported)
    assert cached > 0 and s["total_cached_tokens"] == cached
    assert s["prefix_cache_hit_rate"] == cached / sum(r["prompt_tokens"] for r in reported)
    assert 0 < s["prefix_cache_hit_rate"] < 1
    assert "Prefix cache hit rate (%):" in p.stderr + p.stdout
