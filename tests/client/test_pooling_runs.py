"""Real `locust` runs of the pooling locustfiles against the built-in emulator: Locust's rows,
the summary's pooling section against numpy over the records, and the one-line failures."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.runs import free_port

ROOT = Path(__file__).resolve().parents[2]
LOCUST = [sys.executable, "-m", "locust"]


def run(tmp: Path, locustfile: str, *extra: str, t: str = "3s") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [
        *LOCUST,
        "-f",
        locustfile,
        "--headless",
        "-u",
        "4",
        "-r",
        "4",
        "-t",
        t,
        "--llm-summary",
        str(tmp / "summary.json"),
        "--llm-records",
        str(tmp / "r.jsonl"),
        "--csv",
        str(tmp / "c"),
        "--llm-prompt-tokens",
        "16",
        *extra,
    ]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)


def pooled(tmp: Path) -> list[dict]:
    rows = [json.loads(x) for x in (tmp / "r.jsonl").read_text().splitlines() if x.strip()]
    return [r for r in rows if r["error"] is None and not r["aborted"] and not r["warmup"]]


def stats_row(tmp: Path, name: str) -> dict:
    with open(tmp / "c_stats.csv") as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    return rows[name]


def check_pooling_section(tmp: Path, batch: int) -> dict:
    s = json.loads((tmp / "summary.json").read_text())
    recs = pooled(tmp)
    assert recs and all(r["items"] == batch for r in recs)
    lat = np.array([r["e2e"] for r in recs])
    p = s["pooling"]
    assert p["requests"] == len(recs) == s["completed"]
    assert p["failed"] == 0 and s["failed"] == 0
    assert p["total_items"] == batch * len(recs)
    assert p["total_input_tokens"] == sum(r["prompt_tokens"] for r in recs) > 0
    assert p["mean_latency_ms"] == pytest.approx(float(np.mean(lat)), rel=1e-12)
    assert p["median_latency_ms"] == float(np.percentile(lat, 50))
    assert p["p99_latency_ms"] == float(np.percentile(lat, 99))
    assert p["items_per_s"] == pytest.approx(batch * len(recs) / s["duration"], rel=1e-12)
    assert p["input_tokens_per_s"] == pytest.approx(
        p["total_input_tokens"] / s["duration"], rel=1e-12
    )
    assert lat.min() >= 20.0  # the emulator's prefill time was measured, not skipped
    return s


def test_embeddings_locustfile_end_to_end(tmp_path):
    p = run(
        tmp_path,
        "locustfiles/embeddings.py",
        "--llm-batch-size",
        "4",
        "--llm-serve-args",
        "--runner pooling --emu-ttft-ms 20",
        "--llm-slo",
        "pooling_latency_p99<=5s",
        "--llm-slo",
        "pooling_items_per_s>=1",
    )
    assert p.returncode == 0, p.stderr[-3000:]
    s = check_pooling_section(tmp_path, 4)
    slo = {r["expr"]: r for r in s["slo"]}
    assert slo["pooling_latency_p99<=5s"]["value"] == s["pooling"]["p99_latency_ms"]
    assert slo["pooling_items_per_s>=1"]["value"] == s["pooling"]["items_per_s"]
    assert all(r["passed"] for r in s["slo"])
    row = stats_row(tmp_path, "/v1/embeddings")
    assert row["Type"] == "POST" and row["Failure Count"] == "0"
    assert 0 < int(row["Request Count"]) <= s["pooling"]["requests"] + 4
    assert "Pooling requests:" in p.stderr + p.stdout


def test_rerank_locustfile_two_processes(tmp_path):
    p = run(
        tmp_path,
        "locustfiles/rerank.py",
        "--processes",
        "2",
        # a port of its own: concurrent runs would collide on Locust's 5557
        "--master-bind-port",
        port := str(free_port()),
        "--master-port",
        port,
        "--llm-batch-size",
        "5",
        "--llm-serve-args",
        "--convert classify --emu-ttft-ms 20",
    )
    assert p.returncode == 0, p.stderr[-3000:]
    check_pooling_section(tmp_path, 5)
    assert stats_row(tmp_path, "/v1/rerank")["Failure Count"] == "0"


def test_server_without_the_endpoint_is_one_line(tmp_path):
    # a generation model (the emulator's default) has no /v1/rerank: the pre-flight says so
    p = run(tmp_path, "locustfiles/rerank.py", "--llm-serve-args", "--emu-ttft-ms 5")
    assert p.returncode != 0
    lines = [x for x in p.stderr.splitlines() if "does not serve /v1/rerank" in x]
    assert len(lines) == 1, p.stderr[-3000:]
    assert "the server at http://127.0.0.1:" in lines[0]
    assert "(HTTP 404): start it with a pooling model" in lines[0]
    assert "Traceback" not in p.stderr
    # measured anyway: every request fails with the same line, counted under one key
    q = run(
        tmp_path,
        "locustfiles/rerank.py",
        "--llm-skip-preflight",
        "--llm-serve-args",
        "--emu-ttft-ms 5",
        t="2s",
    )
    s = json.loads((tmp_path / "summary.json").read_text())
    assert list(s["errors"]) == ["/v1/rerank not served"], q.stderr[-2000:]
    example = s["error_examples"]["/v1/rerank not served"]
    assert example.startswith("the server at http://127.0.0.1:")
    assert "does not serve /v1/rerank (HTTP 404)" in example and "\n" not in example
    assert s["completed"] == 0 and s["pooling"]["failed"] == s["failed"] > 0


BAD = """
from locust import constant, task
from locust_llm import OpenAIEmbeddingsUser

class U(OpenAIEmbeddingsUser):
    wait_time = constant(0)

    @task
    def t(self):
        self.embed([])
"""


def test_embed_with_no_inputs_is_a_clear_error(tmp_path):
    lf = tmp_path / "bad.py"
    lf.write_text(BAD)
    p = run(tmp_path, str(lf), "--llm-serve-args", "--runner pooling --emu-ttft-ms 5", t="2s")
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    s = json.loads((tmp_path / "summary.json").read_text())
    assert list(s["errors"]) == ["bad input"]
    msg = s["error_examples"]["bad input"]
    assert msg == "embed(): inputs must be a non-empty list of strings, got []"
    with open(tmp_path / "c_failures.csv") as f:
        failures = list(csv.DictReader(f))
    assert len(failures) == 1 and msg in failures[0]["Error"]
    # never sent: the emulator saw none, and the back-off kept the failing loop slow
    assert s["pooling"]["failed"] == s["failed"] < 200
