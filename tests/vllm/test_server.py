"""Locust-llm against real vLLM: exact usage counts, the wire format, errors, /metrics, Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from locust_llm.scenarios.scrape import Scraper, Target
from locust_llm.web.scrape import parse_stub_status, parse_vllm_metrics

from . import wire
from .conftest import API_KEY, MODEL, MODEL_DIR
from .helpers import LOCUST, ROOT, failures, locust, records, vllm_python

PROMPT_TOKENS = 128


def test_plan_is_the_cpu_plan_with_preloads(vllm_stack):
    r = vllm_stack.replicas[0]
    assert r.argv[:3] == ["numactl", "--cpunodebind=0", "--membind=0"]
    assert r.argv[r.argv.index("serve") + 1] == str(MODEL_DIR)
    assert "libiomp5.so" in r.env["LD_PRELOAD"] and "tcmalloc" in r.env["LD_PRELOAD"]
    assert r.env["VLLM_CPU_OMP_THREADS_BIND"] and r.env["HF_HUB_OFFLINE"] == "1"
    assert vllm_stack.plan.use_nginx and vllm_stack.url != r.url


def test_live_answers_match_the_recorded_fixtures(replica_url):
    live = wire.ask(replica_url, MODEL, API_KEY)
    real = wire.load_fixture()
    for case in wire.CASES:
        assert wire.shape(live[case]) == wire.shape(real[case]), case
    chat = live["chat_stream"]["events"]
    assert chat[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chat[-1] == "[DONE]" and chat[-2]["choices"] == []
    assert chat[-2]["usage"]["completion_tokens"] == 5


def _run(tmp_path, locustfile: str, stack, extra: list[str] = (), t: str = "6s"):
    out = tmp_path / "run"
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "-f", locustfile, "--headless", "-u", "4", "-r", "4", "-t", t, "--stop-timeout", "10",
        "--host", stack.url, "--llm-api-key", API_KEY, "--llm-model", MODEL,
        "--llm-max-tokens", "16", "--llm-ignore-eos", "--llm-prompt-tokens", str(PROMPT_TOKENS),
        "--llm-records", str(out / "records.jsonl"), "--llm-summary", str(out / "summary.json"),
        "--csv", str(out / "locust"), *extra,
    ]  # fmt: skip
    return locust(args), out


def _tokens(texts: list[str], chat: bool) -> list[int]:
    code = (
        "import json, sys\nfrom transformers import AutoTokenizer\n"
        f"t = AutoTokenizer.from_pretrained({str(MODEL_DIR)!r})\n"
        f"texts = json.loads({json.dumps(json.dumps(texts))})\n"
        + (
            "print(json.dumps([len(t.apply_chat_template([{'role': 'user', 'content': x}],"
            " add_generation_prompt=True, tokenize=True)['input_ids']) for x in texts]))"
            if chat
            else "print(json.dumps([len(t(x)['input_ids']) for x in texts]))"
        )
    )
    return json.loads(vllm_python(code))


def test_chat_and_completions_exact_usage(vllm_stack, tmp_path):
    for lf in ("locustfiles/chat.py", "locustfiles/completions.py"):
        done, out = _run(tmp_path / lf.split("/")[1], lf, vllm_stack)
        assert done.returncode == 0, done.stderr[-3000:]
        recs = [r for r in records(out / "records.jsonl") if not r.get("aborted")]
        assert len(recs) >= 8, done.stderr[-2000:]
        assert all(r["error"] is None for r in recs), recs[:2]
        # ignore_eos: exactly max_tokens. One chunk per token (+ the chat role chunk) while the
        # client keeps up; vLLM merges the deltas of a stream whose reader lags behind
        # (RequestOutputCollector), so on busy cores a chunk may carry several tokens.
        assert {r["output_tokens"] for r in recs} == {16}
        assert {r["finish_reason"] for r in recs} == {"length"}
        role = 1 if "chat" in lf else 0
        chunks = [r["token_chunks"] for r in recs]
        assert all(1 + role < c <= 16 + role for c in chunks), chunks
        assert max(chunks) == 16 + role, chunks
        summary = json.loads((out / "summary.json").read_text())
        assert summary["total_output_tokens"] == 16 * summary["completed"]
        assert summary["total_input_tokens"] == sum(
            r["prompt_tokens"] for r in recs if not r.get("warmup")
        )
        assert len({r["prompt_tokens"] for r in recs}) >= 1 and all(
            r["prompt_tokens"] > 0 for r in recs
        )


def test_prompt_tokens_are_the_servers_tokenizer_count(replica_url):
    texts = ["Say hello.", "Why is the sky blue? Answer in one line."]
    answers = [
        wire.request(
            replica_url,
            "POST",
            "/v1/chat/completions",
            {"model": MODEL, "messages": [{"role": "user", "content": x}], "max_tokens": 1},
            {"Authorization": f"Bearer {API_KEY}"},
        )  # fmt: skip
        for x in texts
    ]
    assert [a["body"]["usage"]["prompt_tokens"] for a in answers] == _tokens(texts, chat=True)


def test_vllm_errors_are_clear_failure_rows(vllm_stack, tmp_path):
    done, out = _run(tmp_path, "tests/vllm/locustfile_errors.py", vllm_stack, t="4s")
    rows = failures(out / "locust")
    msgs = [r["Error"] for r in rows]
    text = "\n".join(msgs)
    assert "HTTP 404" in text and "no-such-model" in text, text
    assert "max_tokens=100000 cannot be greater than max_model_len=512" in text, text
    assert "maximum context length is 512 tokens" in text, text
    assert all("\n" not in m for m in msgs) and len(msgs) >= 3
    # a wrong key stops the run in the pre-flight, before any user spawns ...
    done, out = _run(
        tmp_path, "locustfiles/chat.py", vllm_stack, ["--llm-api-key", "sk-wrong"], t="3s"
    )
    said = done.stdout + done.stderr
    (line,) = [ln for ln in said.splitlines() if "pre-flight failed" in ln]
    assert "HTTP 401" in line and "--llm-api-key" in line, line
    assert "sk-wrong" not in said and done.returncode == 1
    # ... and, measured anyway, every request is a failure row saying so
    done, out = _run(
        tmp_path,
        "locustfiles/chat.py",
        vllm_stack,
        ["--llm-api-key", "sk-wrong", "--llm-skip-preflight"],
        t="3s",
    )
    text = "\n".join(r["Error"] for r in failures(out / "locust"))
    assert "HTTP 401" in text and "--llm-api-key" in text and "sk-wrong" not in text, text
    assert done.returncode != 0 and "sk-wrong" not in done.stdout + done.stderr


def test_metrics_read_by_scenario_scraper_and_llm_tab(vllm_stack, tmp_path):
    r = vllm_stack.replicas[0]
    path = tmp_path / "server_metrics.jsonl"
    s = Scraper(
        [Target(name=r.name, url=r.metrics_url, model=r.model)], vllm_stack.nginx_status_url, path
    )
    with open(path, "a") as fh:
        s.scrape_once(fh)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    rep = next(x for x in lines if x.get("replica") == r.name)
    assert "error" not in rep, rep
    assert rep["generation_tokens_total"] > 0 and rep["request_success_total"] > 0
    assert {"num_requests_running", "num_requests_waiting", "kv_cache_usage_perc"} <= set(rep)
    assert any("nginx" in x for x in lines)
    import urllib.request

    text = urllib.request.urlopen(r.metrics_url, timeout=5).read().decode()
    tab = parse_vllm_metrics(text)
    assert {"running", "waiting", "kv_cache_usage", "generation_tokens", "prompt_tokens"} <= set(
        tab
    )
    stub = urllib.request.urlopen(vllm_stack.nginx_status_url, timeout=5).read().decode()
    assert parse_stub_status(stub)["requests"] > 0


def test_ctrl_c_mid_run(vllm_stack, tmp_path):
    out = tmp_path
    p = subprocess.Popen(
        LOCUST + [
            "-f", "locustfiles/chat.py", "--headless", "-u", "4", "-r", "4", "-t", "60s",
            "--host", vllm_stack.url, "--llm-api-key", API_KEY, "--llm-model", MODEL,
            "--llm-max-tokens", "200", "--llm-ignore-eos",
            "--llm-summary", str(out / "summary.json"), "--llm-records", str(out / "r.jsonl"),
        ],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(6)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["completed"] >= 1 and summary["failed"] == 0, err[-2000:]
    recs = records(out / "r.jsonl")
    assert any(r.get("aborted") for r in recs) or summary["aborted"] >= 0
    assert all(r["error"] is None or r.get("aborted") for r in recs), recs[-3:]
