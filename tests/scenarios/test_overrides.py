"""`locust-llm run --backend cpu --model M`: a file written for a big model on real vLLM here."""

from pathlib import Path

from locust_llm.backends.topology import read_cpu_topology
from locust_llm.scenarios.cli import main
from locust_llm.scenarios.command import apply_overrides
from locust_llm.scenarios.runner import make_plan_for
from locust_llm.scenarios.spec import load_file

ROOT = Path(__file__).resolve().parents[2]


def test_backend_and_model_override_reach_the_plan(monkeypatch):
    from locust_llm.backends import install

    monkeypatch.setattr(install, "find_vllm", lambda *a, **k: None)
    specs = load_file(ROOT / "scenarios" / "numa-vs-baseline.toml")
    apply_overrides(specs, "cpu", 30.0, "models/tiny-llama")
    base = next(s for s in specs if s.name == "baseline-users-100")
    bound = next(s for s in specs if s.name == "core-aware-users-100")
    assert base.params["model"] == bound.params["model"] == "models/tiny-llama"
    plan = make_plan_for(bound)
    assert plan.backend == "cpu"
    # one replica per NUMA node: bound to it with numactl; the baseline is not bound at all
    assert len(plan.replicas) == len(read_cpu_topology().nodes)
    assert all(r.argv[0] == "numactl" for r in plan.replicas)
    assert "serve" in make_plan_for(base).replicas[0].argv
    assert make_plan_for(base).replicas[0].argv[0] != "numactl"


def test_several_models_keep_their_names_and_serve_the_override():
    specs = load_file(ROOT / "scenarios" / "lb-policies.toml")
    apply_overrides(specs, "emulator", None, "models/tiny-llama")
    for s in specs:
        if s.params.get("models"):
            assert {m["model"] for m in s.params["models"]} == {"models/tiny-llama"}
            assert all(m["name"] != "models/tiny-llama" for m in s.params["models"])


def test_validate_accepts_cpu_backend_and_model(capsys):
    rc = main([str(ROOT / "scenarios" / "numa-vs-baseline.toml"), "--backend", "cpu",
               "--model", "models/tiny-llama", "--run-time", "30s", "--only", "*-users-100",
               "--validate"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and out.count("backend=cpu") == 2 and "30s" in out


def test_run_and_search_take_the_shared_arguments_alike():
    """The arguments both subcommands take parse to the same values in each."""
    from locust_llm.scenarios import cli, search

    argv = ["f.toml", "--backend", "emulator", "--run-time", "7s", "--run-id", "r"]
    argv += ["--out", "o", "--fresh", "--no-report"]
    run, srch = vars(cli.parser().parse_args(argv)), vars(search.parser().parse_args(argv))
    shared = {"file", "backend", "run_time", "run_id", "out", "fresh", "no_report"}
    assert {k: run[k] for k in shared} == {k: srch[k] for k in shared}
    assert run["out"] == Path("o") and run["file"] == Path("f.toml") and run["fresh"] is True
    assert set(srch) == shared  # search adds nothing of its own
