from __future__ import annotations

from pathlib import Path

import pytest

from .synth import T0, make_scenario

XSS = "</script><script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"
USERS = [1, 2, 5, 10, 20, 30, 40, 50, 60, 80, 100]


@pytest.fixture
def sweep_run(tmp_path: Path) -> Path:
    """A concurrency sweep whose throughput plateaus at 40 users; SLO fails from 60 on."""
    run = tmp_path / "sweep-run"
    for i, u in enumerate(USERS):
        make_scenario(
            run,
            f"users-{u}",
            params={"order": i, "users": u, "backend": "emulator"},
            n=60,
            ttft_ms=50 + 10 * max(0, u - 40),
            output_throughput=25.0 * min(u, 40),
            slo_passed=u < 60,
            seed=i,
        )
    return run


@pytest.fixture
def compare_run(tmp_path: Path) -> Path:
    """Baseline vs candidate: candidate TTFT is 30 ms higher; hostile strings everywhere."""
    run = tmp_path / "cmp-run"
    make_scenario(
        run,
        "baseline",
        params={"order": 0, "layout": "unbound"},
        n=800,
        seed=1,
        errors={XSS: 2, "HTTP 503: queue full": 3},
    )
    make_scenario(
        run,
        "core-aware" + XSS,
        params={"order": 1, "layout": "numa"},
        n=800,
        ttft_ms=130,
        seed=2,
        events=[{"t": T0 + 4, "kind": "replica_killed", "detail": "r1" + XSS}],
    )
    return run
