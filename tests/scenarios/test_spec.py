from __future__ import annotations

from pathlib import Path

import pytest

from locust_llm.scenarios import ScenarioError, load_file, parse_duration
from locust_llm.scenarios.cli import main
from locust_llm.scenarios.command import apply_overrides

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "scenarios").glob("*.toml"))
EXPECTED = {
    "numa-vs-baseline": 4,
    "tp-sweep": 6,
    "concurrency-sweep": 12,
    "lb-policies": 4,
    "autoscaling-signals": 1,
}


def test_every_example_file_validates_and_expands():
    assert {p.stem for p in EXAMPLES} == set(EXPECTED)
    for path in EXAMPLES:
        specs = load_file(path)
        assert len(specs) == EXPECTED[path.stem], path
        assert len({s.name for s in specs}) == len(specs)
        apply_overrides(specs, "emulator", 5.0)
        for s in specs:
            assert s.params["backend"] == "emulator" and s.run_time == 5.0
            assert s.params["warmup"] <= 1.0
            assert Path(s.params["locustfile"]).is_file()
        assert main([str(path), "--validate", "--backend", "emulator"]) == 0


def test_matrix_names_and_templates():
    specs = load_file(ROOT / "scenarios" / "tp-sweep.toml")
    assert [s.name for s in specs][:3] == ["tp1-u1", "tp1-u32", "tp2-u1"]
    assert specs[1].swept == {"tp": 1, "users": 32}
    numa = load_file(ROOT / "scenarios" / "numa-vs-baseline.toml")
    assert numa[0].name == "baseline-users-100" and numa[0].params["reference"] is True


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


def test_errors_name_file_line_key_and_allowed(tmp_path: Path):
    p = write(
        tmp_path,
        '[defaults]\nmodel = "m"\n\n[[scenario]]\nname = "a"\n\n'
        '[[scenario]]\nname = "b"\nusers = [1, "ten"]\n',
    )
    with pytest.raises(ScenarioError) as e:
        load_file(p)
    msg = str(e.value)
    assert f"{p}:9:" in msg and "'users'" in msg and "integer >= 1" in msg and "(b)" in msg

    p = write(tmp_path, '[[scenario]]\nname = "a"\nmodel = "m"\nlb = "fastest"\n')
    msg = str(pytest.raises(ScenarioError, load_file, p).value)
    assert ":4:" in msg and "'least_conn'" in msg and "'round_robin'" in msg

    p = write(tmp_path, '[defaults]\nmodel = "m"\nuser = 3\n[[scenario]]\nname = "a"\n')
    msg = str(pytest.raises(ScenarioError, load_file, p).value)
    assert ":3:" in msg and "[defaults]" in msg and "did you mean users" in msg

    p = write(
        tmp_path, '[[scenario]]\nname = "a"\nmodel = "m"\n[scenario.slo]\nttft_p95 = "<=8x"\n'
    )
    msg = str(pytest.raises(ScenarioError, load_file, p).value)
    assert ":4:" in msg and "'slo'" in msg and "ttft_p95<=800ms" in msg

    p = write(
        tmp_path, '[[scenario]]\nname = "a"\nmodel = "m"\n[[scenario]]\nname = "a"\nmodel = "m"\n'
    )
    assert "used twice" in str(pytest.raises(ScenarioError, load_file, p).value)

    p = write(tmp_path, '[[scenario]]\nname = "a"\nmodel = "m"\nlocustfile = "nope.py"\n')
    assert "nope.py" in str(pytest.raises(ScenarioError, load_file, p).value)

    p = write(tmp_path, "[[scenario]\nname = 1\n")
    assert "invalid TOML" in str(pytest.raises(ScenarioError, load_file, p).value)

    p = write(tmp_path, '[[scenario]]\nname = "a b"\nmodel = "m"\n')
    assert "directory name" in str(pytest.raises(ScenarioError, load_file, p).value)


def test_sweeps_over_list_fields_options_and_defaults(tmp_path: Path):
    p = write(
        tmp_path,
        '[defaults]\nmodel = "m"\nusers = [1, 2]\n'
        'serve_args = [["--max-num-seqs", "8"], ["--max-num-seqs", "16"]]\n'
        '[[scenario]]\nname = "x"\noptions = { foo = [1, 2], bar = true }\n'
        '[[scenario]]\nname = "y"\nusers = 5\nslo = { error_rate = "<=1%" }\n',
    )
    specs = load_file(p)
    xs = [s for s in specs if s.name.startswith("x")]
    assert len(xs) == 8 and len(specs) == 10
    assert xs[0].params["options"] == {"bar": True, "foo": 1}
    ys = [s for s in specs if s.name.startswith("y")]
    assert all(s.params["users"] == 5 for s in ys) and ys[0].params["slo"] == ["error_rate<=1%"]


def test_durations():
    assert parse_duration("1h30m") == 5400 and parse_duration(15) == 15
    assert parse_duration("500ms") == 0.5 and parse_duration("2m") == 120
    with pytest.raises(ValueError):
        parse_duration("soon")


def _scenario(tmp_path, lines: str) -> Path:
    f = tmp_path / "s.toml"
    f.write_text(
        '[[scenario]]\nname = "one"\nbackend = "emulator"\nmodel = "m"\n'
        'locustfile = "locustfiles/rate.py"\n' + lines
    )
    return f


def test_validate_rejects_an_option_the_locustfile_does_not_have(tmp_path, capsys):
    f = _scenario(tmp_path, "options = {rate = 5, foo = 1}\n")
    assert main([str(f), "--validate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scenario 'one': options.foo: not an option of rate.py" in err[0]


def test_validate_runs_the_runs_checks_on_a_dataset_path(tmp_path, capsys):
    f = _scenario(tmp_path, 'options = {dataset = "/nonexistent.json", rate = 5}\n')
    assert main([str(f), "--validate"]) == 2
    err = capsys.readouterr().err
    assert "scenario 'one':" in err and "/nonexistent.json: cannot read" in err
    data = tmp_path / "prompts.txt"
    data.write_text("hello there\nanother prompt\n")
    f = _scenario(tmp_path, f'options = {{dataset = "{data}", rate = 5}}\n')
    assert main([str(f), "--validate"]) == 0


def test_option_values_stay_with_their_flag(tmp_path):
    # a value Locust could read as a positional user class or a flag stays attached
    from locust_llm.scenarios.runner import locust_argv

    f = _scenario(
        tmp_path, 'options = {dataset = "/data/x.json", rate = -1, timestamps = "user"}\n'
    )
    argv = locust_argv(load_file(f)[0], "http://127.0.0.1:9", tmp_path)
    assert "--llm-dataset=/data/x.json" in argv and "--llm-rate=-1" in argv
    assert "/data/x.json" not in argv


def test_validate_checks_the_file_level_gate(tmp_path, capsys):
    body = (
        '[[scenario]]\nname = "one"\nbackend = "emulator"\nmodel = "m"\n'
        'locustfile = "locustfiles/chat.py"\n'
    )
    f = tmp_path / "g.toml"
    f.write_text('gate = "max_users_meeting_slo >>> 40"\n' + body)
    assert main([str(f), "--validate"]) == 2
    assert "gate" in capsys.readouterr().err
    f.write_text('gate = "max_users_meeting_slo >= 40"\n' + body)
    assert main([str(f), "--validate"]) == 0
