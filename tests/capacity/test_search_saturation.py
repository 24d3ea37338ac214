"""A saturated probe fails the search's probe even when its SLOs pass, and says so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from locust_llm.metrics.saturation import detect
from locust_llm.scenarios.bisect import Bisection
from locust_llm.scenarios.search import SearchConfig, _probe_line, _probe_row, probe_spec
from locust_llm.scenarios.spec import ScenarioSpec

ROOT = Path(__file__).resolve().parents[2]


def _summary(saturated: bool) -> dict:
    flat, growing = [8.0] * 20, [8.0 + 1.5 * i for i in range(20)]
    ys = flat + (growing if saturated else flat)
    rows = [
        {"t": 1000 + i, "requests": 5, "in_flight": f, "ttft_p50_ms": 50.0}
        for i, f in enumerate(ys)
    ]
    return {
        "completed": 100,
        "failed": 0,
        "output_throughput": 160.0,
        "p99_ttft_ms": 900.0,
        "slo": [{"expr": "ttft_p99<=60s", "value": 900.0, "passed": True}],
        "saturation": detect(rows).to_json(),
    }


def test_saturated_probe_fails_with_passing_slos_and_the_search_stops_escalating():
    cfg = SearchConfig("rate", 2.0, 64.0, 2.0, 1, "warm", None)
    base = ScenarioSpec("q", 0, {"name": "q", "options": {"rate": 1}}, Path("q.toml"), {})
    bis = Bisection(cfg.min, cfg.max, cfg.tolerance, integer=cfg.integer)
    probed = []
    while (v := bis.next_value()) is not None:
        spec = probe_spec(base, cfg, v, 1)
        assert spec.params["options"]["rate"] == v
        row = _probe_row(cfg, v, [(spec, _summary(saturated=v >= 8))])
        probed.append((v, row))
        bis.record(v, row["passed"])
    values = [v for v, _ in probed]
    assert values == [2.0, 4.0, 8.0, 6.0]  # nothing above the first saturated probe
    sat = dict(probed)[8.0]
    assert sat["passed"] is False and sat["saturated"] and sat["failed_slo"] == []
    fig = sat["runs"][0]
    assert fig["saturated"] is True and fig["saturation"]["series"] == "in_flight"
    assert "queueing grows without bound" in fig["saturation"]["reason"]
    line = _probe_line(cfg, sat)
    assert "FAIL saturated (in_flight growing from" in line
    assert dict(probed)[4.0]["runs"][0]["saturated"] is False
    assert bis.state()["best"] == 6.0


SEARCH_TOML = """
[defaults]
backend = "emulator"
model = "m"
locustfile = "locustfiles/rate.py"
users = 150
serve_args = ["--max-num-seqs", "4"]
emulator_args = ["--emu-ttft-ms", "50", "--emu-itl-ms", "20"]
max_tokens = 16
ignore_eos = true
slo = ["ttft_p99<=60s"]
options = { rate = 3, arrival = "poisson" }
locust_args = ["--stop-timeout", "0"]

[[scenario]]
name = "q"

[search]
by = "rate"
min = 4
max = 64
tolerance = 8
run_time = "22s"
"""


@pytest.mark.slow
def test_search_stops_past_a_saturated_emulator(tmp_path):
    """4 sequences of ~0.37 s: about 11 req/s; 16 req/s queues without bound (no timeout),
    its TTFT p99 stays within the loose SLO, and the search still fails it and stops."""
    f = tmp_path / "q.toml"
    f.write_text(SEARCH_TOML)
    p = subprocess.run(
        [sys.executable, "-m", "locust_llm.cli", "search", str(f), "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    result = json.loads((tmp_path / "q" / "search.json").read_text())
    probes = {pr["value"]: pr for pr in result["probes"]}
    assert list(probes) == [4, 8, 16], p.stdout[-3000:] + p.stderr[-3000:]
    top = probes[16]
    assert top["saturated"] and not top["passed"] and top["failed_slo"] == []
    assert top["runs"][0]["saturation"]["series"] in ("in_flight", "ttft_p50_ms")
    assert probes[8]["passed"] and not probes[8]["saturated"]
    assert result["max_rate_meeting_slo"] == 8
    assert "rate=16: FAIL saturated (" in p.stdout
