"""One translator from a front end's words to the plan: the same words give the same plan
whether they come from Locust's options, a scenario file or ``locust-llm plan``."""

import argparse
import json
import shlex
import sys
from pathlib import Path

import pytest

from locust_llm.backends import BackendArgs, BackendError, backend_args, plan_for
from locust_llm.backends.cli import main as plan_main
from locust_llm.options import LLMOptions, add_arguments
from locust_llm.scenarios.runner import make_plan_for
from locust_llm.scenarios.spec import ScenarioSpec

EMU = f"{sys.executable} -m locust_llm.emulator"


def _without_port(argv, port):
    # ports are probed per plan; the rest of the command must agree
    return [a for a in argv if a != str(port)]


def _argv(plan):
    return [_without_port(r.argv, r.port) for r in plan.replicas]


def _locust_options(*argv: str) -> LLMOptions:
    parser = argparse.ArgumentParser()
    orig = parser.add_argument

    def add(*a, include_in_web_ui=False, **kw):
        return orig(*a, **kw)

    parser.add_argument = add
    add_arguments(parser)
    return LLMOptions.of(parser.parse_args(list(argv)))


def test_locust_options_scenario_and_plan_cli_agree(capsys):
    o = _locust_options(
        "--llm-backend", "emulator", "--llm-model", "m", "--llm-replicas", "2",
        "--llm-lb", "round_robin", "--llm-serve-args", "--max-num-seqs 8 --emu-itl-ms 5",
        "--llm-vllm-cmd", EMU,
    )  # fmt: skip
    from_locust = plan_for(
        backend_args(
            o.backend,
            model=o.model,
            tp=o.tp,
            replicas=o.replicas,
            lb=o.lb,
            vllm_cmd=o.vllm_cmd,
            serve_args=o.serve_args,
        )  # fmt: skip
    )
    spec = ScenarioSpec(
        name="s",
        index=0,
        source=Path("s.toml"),
        params={
            "backend": "emulator", "model": "m", "replicas": 2, "lb": "round_robin",
            "serve_args": ["--max-num-seqs", "8"], "emulator_args": ["--emu-itl-ms", "5"],
            "vllm_cmd": EMU,
        },
    )  # fmt: skip
    from_scenario = make_plan_for(spec)
    assert plan_main(
        ["--backend", "emulator", "--model", "m", "--replicas", "2", "--lb", "round_robin",
         "--vllm-cmd", EMU, "--json", "--", "--max-num-seqs", "8", "--emu-itl-ms", "5"]
    ) == 0  # fmt: skip
    from_cli = json.loads(capsys.readouterr().out)
    assert _argv(from_locust) == _argv(from_scenario)
    assert len(_argv(from_locust)) == 2 and "--max-num-seqs" in _argv(from_locust)[0]
    assert from_locust.lb == from_scenario.lb == from_cli["lb"] == "round_robin"
    cli = [shlex.split(r["command"]) for r in from_cli["replicas"]]
    assert [
        _without_port(c, r["url"].rsplit(":", 1)[1]) for c, r in zip(cli, from_cli["replicas"])
    ] == _argv(from_locust)


def test_blank_fields_mean_the_defaults():
    a = backend_args("emulator", model="m", tp=None, replicas=0, lb="", serve_args=None)
    assert a == BackendArgs("emulator", "m")
    assert backend_args("gpu", model="m", baseline=True).baseline is False  # cpu only


def test_serve_args_string_is_split_like_a_shell():
    a = backend_args("emulator", model="m", serve_args="--max-num-seqs 8 --x 'a b'")
    assert a.serve_args == ("--max-num-seqs", "8", "--x", "a b")


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"backend": "tpu"}, "unknown backend 'tpu': choose one of"),
        ({"backend": "emulator", "lb": "fastest"}, "unknown lb 'fastest': choose one of"),
        ({"backend": "emulator", "serve_args": "--x 'unclosed"}, "cannot split the serve"),
    ],
)
def test_bad_words_are_one_line_errors(kw, words):
    with pytest.raises(BackendError) as e:
        backend_args(kw.pop("backend"), model="m", **kw)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_typed_arguments_reject_nonsense_counts():
    with pytest.raises(BackendError, match="tp must be an integer >= 1"):
        BackendArgs("emulator", "m", tp=0)
    with pytest.raises(BackendError, match="replicas must be an integer >= 1"):
        BackendArgs("emulator", "m", replicas=-2)
