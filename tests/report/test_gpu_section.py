"""The report's GPU section from the recorded sampler fixture (no GPU needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from locust_llm.report import build
from locust_llm.telemetry.aggregate import aggregate, read_samples

from .synth import T0, make_scenario

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gpu" / "two_gpus.jsonl"


def _figures(page: str) -> list[dict]:
    scripts = re.findall(
        r'<script type="application/json" class="figure-data"[^>]*>(.*?)</script>', page, re.S
    )
    return [json.loads(s) for s in scripts]


def test_report_has_gpu_charts_with_the_fixture_values(tmp_path: Path):
    run = tmp_path / "run"
    d = make_scenario(run, "gpu-run", params={"users": 4})
    rows = read_samples(FIXTURE)
    shift = T0 - 1000.0  # the fixture's clock starts at 1000 s; the scenario's at T0
    with (d / "gpu_telemetry.jsonl").open("w") as fh:
        for r in rows:
            fh.write(json.dumps({**r, "t": r["t"] + shift}) + "\n")
    summary = json.loads((d / "summary.json").read_text())
    summary["gpu"] = aggregate(
        [{**r, "t": r["t"] + shift} for r in rows],
        output_tokens=3000,
        groups={"r0": [0], "r1": [1]},
    )
    (d / "summary.json").write_text(json.dumps(summary))
    page = build.build_report([run], tmp_path / "out", resamples=50).read_text()
    assert 'id="gpu"' in page and "GPU telemetry" in page
    assert "energy per output token <b>1.1667 J</b>" in page  # 3500 J / 3000 tokens
    assert "output tokens/s per GPU <b>300</b>" in page  # 3000 / 5 s / 2 GPUs
    assert '<td class="l">r1</td><td>1</td><td>0</td><td>500</td>' in page  # integrated
    figs = [f for f in _figures(page) if any("GPU 0" in (t.get("name") or "") for t in f["data"])]
    assert len(figs) == 1
    traces = figs[0]["data"]
    by = {}
    for t in traces:
        by.setdefault(t["name"], []).append(t)
    assert set(by) == {"GPU 0 (r0)", "GPU 1 (r1)"}
    util0, mem0, power0, clock0 = by["GPU 0 (r0)"]
    want = [r for r in rows if r["gpu"] == 0]
    assert util0["y"] == [r["util"] for r in want]
    assert power0["y"] == [r["power_w"] for r in want] and mem0["y"][0] == 1000.0
    assert clock0["y"][0] == 1500 and by["GPU 1 (r1)"][3]["y"][0] == 360
    assert util0["x"][0] == pytest.approx(want[0]["t"] - 1000.0)


def test_no_gpu_samples_no_gpu_section(tmp_path: Path):
    run = tmp_path / "run"
    make_scenario(run, "plain", params={"users": 4})
    page = build.build_report([run], tmp_path / "out", resamples=50).read_text()
    assert 'id="gpu"' not in page
