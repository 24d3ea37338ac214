"""The pre-flight: bad input and an unusable server stop the run before any user spawns,
with one line and exit code 1; ``--llm-skip-preflight`` runs anyway, and then a failing path
backs off instead of spinning."""

from __future__ import annotations

import subprocess

import pytest

from tests.runs import ROOT, free_port
from tests.runs import emulator as start_emulator
from tests.runs import run_locust as run

HEADLESS = ["--headless", "-u", "4", "-r", "4", "-t", "3s", "--llm-max-tokens", "4"]


def _one_clear_line(out: subprocess.CompletedProcess, needle: str) -> None:
    assert out.returncode == 1, (out.returncode, out.stderr[-2000:])
    lines = [x for x in out.stderr.splitlines() if "pre-flight failed" in x]
    assert len(lines) == 1 and needle in lines[0], out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert "Ramping to" not in out.stderr and "All users spawned" not in out.stderr


@pytest.fixture()
def emulator():
    with start_emulator(model="served-model") as url:
        yield url


def test_dead_port_stops_before_users() -> None:
    host = f"http://127.0.0.1:{free_port()}"
    out = run(["-f", "locustfiles/chat.py", "-H", host, *HEADLESS])
    _one_clear_line(out, "connection refused")
    assert "--llm-skip-preflight" in out.stderr


def test_wrong_model_stops_before_users(emulator) -> None:
    out = run(["-f", "locustfiles/chat.py", "-H", emulator, "--llm-model", "foo", *HEADLESS])
    _one_clear_line(out, "model 'foo' is not served")
    assert "served-model" in out.stderr


def test_missing_dataset_stops_before_users(emulator) -> None:
    for locustfile in ("rate.py", "sweep.py"):
        args = ["-f", f"locustfiles/{locustfile}", "-H", emulator, "--llm-rate", "5"]
        args += ["--llm-dataset", "/nonexistent.json", *HEADLESS]
        out = run(
            args if locustfile == "rate.py" else [a for a in args if a != "5" and a != "--llm-rate"]
        )
        _one_clear_line(out, "/nonexistent.json")


def test_good_server_passes_and_the_run_happens(emulator) -> None:
    out = run(["-f", "locustfiles/chat.py", "-H", emulator, *HEADLESS])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "pre-flight passed" in out.stderr and "served-model" in out.stderr


def test_skip_preflight_runs_and_backs_off() -> None:
    host = f"http://127.0.0.1:{free_port()}"
    out = run(["-f", "locustfiles/chat.py", "-H", host, "--llm-skip-preflight", "--llm-model", "m", *HEADLESS,
               "--csv", "out"], timeout=60)  # fmt: skip
    assert "pre-flight" not in out.stderr
    stats = (ROOT / "out_stats.csv").read_text().splitlines()
    for f in ("out_stats.csv", "out_stats_history.csv", "out_failures.csv", "out_exceptions.csv"):
        (ROOT / f).unlink(missing_ok=True)
    row = next(x for x in stats if "/v1/chat/completions" in x).split(",")
    failures = int(row[3])
    # 4 users for 3 s: spinning made thousands; backing off to 2 s leaves a few per user
    assert 4 <= failures <= 60, stats
    warned = [x for x in out.stderr.splitlines() if "requests fail at once" in x]
    assert len(warned) == 1, out.stderr[-2000:]


def test_rate_sends_nothing_after_the_run_time_ends(emulator, tmp_path) -> None:
    summary = tmp_path / "s.json"
    out = run(["-f", "locustfiles/rate.py", "-H", emulator, "--headless", "-u", "8", "-r", "8",
               "-t", "5s", "--stop-timeout", "5", "--llm-rate", "10", "--llm-arrival", "constant",
               "--llm-max-tokens", "4", "--llm-summary", str(summary)], timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    s = json.loads(summary.read_text())
    # 10/s for 5 s from the first arrival: 50, give or take the arrivals at the edges
    assert 45 <= s["completed"] + s["failed"] + s["aborted"] <= 52, s["completed"]


def test_chat_takes_a_dataset(emulator, tmp_path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(
        '{"prompt": "hello there", "max_tokens": 3}\n{"prompt": "hi", "max_tokens": 3}\n'
    )
    out = run(["-f", "locustfiles/chat.py", "-H", emulator, *HEADLESS, "--llm-dataset", str(data)])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 entries loaded, 0 skipped" in out.stderr


def test_records_are_replaced_unless_asked_to_append(emulator, tmp_path) -> None:
    import json

    rec, summary = tmp_path / "r.jsonl", tmp_path / "s.json"
    args = ["-f", "locustfiles/chat.py", "-H", emulator, *HEADLESS, "-t", "2s",
            "--llm-records", str(rec), "--llm-summary", str(summary)]  # fmt: skip

    def total() -> int:
        s = json.loads(summary.read_text())
        return s["completed"] + s["failed"] + s["aborted"]

    assert run(args).returncode == 0
    first = len(rec.read_text().splitlines())
    assert first == total() > 0
    assert run(args).returncode == 0
    assert len(rec.read_text().splitlines()) == total()  # this run's only
    second = total()
    assert run([*args, "--llm-records-append"]).returncode == 0
    assert len(rec.read_text().splitlines()) == second + total()


def test_aborted_requests_are_not_failures_in_locusts_table(tmp_path) -> None:
    import json

    summary = tmp_path / "s.json"
    out = run(["-f", "locustfiles/chat.py", "--headless", "-u", "6", "-r", "6", "-t", "4s",
               "--llm-max-tokens", "60", "--llm-ignore-eos", "--llm-serve-args",
               "--emu-ttft-ms 20 --emu-itl-ms 20", "--llm-summary", str(summary),
               "--csv", str(tmp_path / "out")])  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    s = json.loads(summary.read_text())
    assert s["aborted"] >= 1 and s["failed"] == 0, (s["aborted"], s["failed"])
    # Locust's final table, printed after the users stopped (the aborted ones with them)
    final = [
        x for x in out.stderr.splitlines() if x.startswith("POST") and "/v1/chat" in x and "|" in x
    ][-1]
    assert final.split()[2:4] == [str(s["completed"]), "0(0.00%)"], final


def test_a_bad_option_value_is_not_offered_the_skip_flag() -> None:
    # --llm-skip-preflight skips the server check, not the option checks: no false hint
    out = run(["-f", "locustfiles/rate.py", "-H", "http://127.0.0.1:9", "--llm-rate", "5",
               "--llm-dataset", "/nonexistent.json", *HEADLESS])  # fmt: skip
    _one_clear_line(out, "/nonexistent.json")
    assert "--llm-skip-preflight" not in out.stderr


@pytest.fixture()
def no_models_server():
    """A server whose ``/v1/models`` lists nothing (a gateway with no route configured)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = json.dumps({"object": "list", "data": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *a) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_no_models_listed_says_so_and_names_the_option_once(no_models_server) -> None:
    """The pre-flight and the lookup in a run without it each say what is wrong and what to
    do, naming ``--llm-model`` once per message."""
    out = run(["-f", "locustfiles/chat.py", "-H", no_models_server, *HEADLESS])
    _one_clear_line(out, "/v1/models lists no model: pass --llm-model")
    (line,) = [x for x in out.stderr.splitlines() if "pre-flight failed" in x]
    assert line.count("--llm-model") == 1, line
    out = run(["-f", "locustfiles/chat.py", "-H", no_models_server, "--llm-skip-preflight",
               *HEADLESS, "-t", "1s"])  # fmt: skip
    lines = [x for x in (out.stdout + out.stderr).splitlines() if "lists no models" in x]
    assert lines, out.stderr[-2000:]
    assert all(x.count("--llm-model") == 1 for x in lines), lines
    assert "(or pass --llm-model to skip the lookup)" in lines[0]
