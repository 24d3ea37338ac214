"""The emulator as a black box: wire format, endpoints, errors, faults, lifecycle, real clients."""

from __future__ import annotations

import shutil
import subprocess
import time

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from locust_llm.emulator import text as textmod

from .client import Conn, get, post

CHAT = "/v1/chat/completions"
COMPL = "/v1/completions"
FAST = ("--emu-ttft-ms", "5", "--emu-itl-ms", "2")


def chat_body(**kw):
    return {
        "model": "locust-llm/emulator",
        "messages": [{"role": "user", "content": "hello world"}],
        **kw,
    }


def test_chat_stream_wire_format(emulator):
    emu = emulator(*FAST)
    status, hdrs, _, events = post(
        emu.port, CHAT, chat_body(max_tokens=5, stream=True, stream_options={"include_usage": True})
    )
    assert status == 200 and hdrs["content-type"].startswith("text/event-stream")
    assert hdrs["transfer-encoding"] == "chunked"
    assert events[-1][1] == b"[DONE]"
    chunks = [orjson.loads(p) for _, p in events[:-1]]
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    assert all(
        c["object"] == "chat.completion.chunk" and c["model"] == "locust-llm/emulator"
        for c in chunks
    )
    assert chunks[0]["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    tokens = chunks[1:-1]
    assert len(tokens) == 5
    for c in tokens[:-1]:
        assert list(c["choices"][0]) == ["index", "delta", "logprobs", "finish_reason", "token_ids"]
        assert c["choices"][0]["finish_reason"] is None and c["choices"][0]["delta"]["content"]
    assert tokens[-1]["choices"][0]["finish_reason"] == "length"
    prompt = textmod.chat_prompt([{"role": "user", "content": "hello world"}])[1]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": prompt,
        "total_tokens": prompt + 5,
        "completion_tokens": 5,
    }
    assert all("usage" not in c for c in chunks[:-1])


def test_continuous_usage_and_no_usage(emulator):
    emu = emulator(*FAST)
    so = {"include_usage": True, "continuous_usage_stats": True}
    _, _, _, events = post(emu.port, CHAT, chat_body(max_tokens=3, stream=True, stream_options=so))
    chunks = [orjson.loads(p) for _, p in events[:-1]]
    assert [c["usage"]["completion_tokens"] for c in chunks] == [0, 1, 2, 3, 3]
    _, _, _, events = post(emu.port, CHAT, chat_body(max_tokens=3, stream=True))
    chunks = [orjson.loads(p) for _, p in events[:-1]]
    assert len(chunks) == 4 and all(c["choices"] for c in chunks)


def test_completions_stream_and_blocking(emulator):
    emu = emulator(*FAST)
    body = {"model": "locust-llm/emulator", "prompt": "abcdefgh", "max_tokens": 4, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    _, _, _, events = post(emu.port, COMPL, body)
    chunks = [orjson.loads(p) for _, p in events[:-1]]
    assert chunks[0]["id"].startswith("cmpl-") and chunks[0]["object"] == "text_completion"
    assert [c["choices"][0]["finish_reason"] for c in chunks[:4]] == [None, None, None, "length"]
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "total_tokens": 6, "completion_tokens": 4}
    streamed = "".join(c["choices"][0]["text"] for c in chunks[:4])
    status, _, raw, _ = post(emu.port, COMPL, {**body, "stream": False})
    r = orjson.loads(raw)
    assert status == 200 and r["object"] == "text_completion"
    assert r["choices"][0]["text"] == streamed  # deterministic per prompt and seed
    assert r["usage"]["completion_tokens"] == 4 and r["choices"][0]["finish_reason"] == "length"
    status, _, raw, _ = post(emu.port, CHAT, chat_body(max_tokens=3))
    r = orjson.loads(raw)
    assert r["object"] == "chat.completion" and r["choices"][0]["message"]["role"] == "assistant"
    assert len(r["choices"][0]["message"]["content"].split()) == 3


def test_stop_min_tokens_eos(emulator):
    emu = emulator(*FAST, "--emu-eos-prob", "0.5", "--emu-seed", "3")
    # EOS is seeded: without ignore_eos most requests stop early; min_tokens is a floor
    lens = []
    for i in range(10):
        r = orjson.loads(
            post(emu.port, COMPL, {"prompt": f"p{i}", "max_tokens": 50, "min_tokens": 2})[2]
        )
        lens.append((r["usage"]["completion_tokens"], r["choices"][0]["finish_reason"]))
    assert all(n >= 2 for n, _ in lens) and any(f == "stop" and n < 50 for n, f in lens)
    r = orjson.loads(
        post(emu.port, COMPL, {"prompt": "p", "max_tokens": 50, "ignore_eos": True})[2]
    )
    assert r["usage"]["completion_tokens"] == 50 and r["choices"][0]["finish_reason"] == "length"
    full = orjson.loads(
        post(emu.port, COMPL, {"prompt": "q", "max_tokens": 30, "ignore_eos": True})[2]
    )
    words = full["choices"][0]["text"].split()
    stop = " " + words[5]
    cut = orjson.loads(
        post(
            emu.port, COMPL, {"prompt": "q", "max_tokens": 30, "stop": [stop], "ignore_eos": True}
        )[2]
    )
    c = cut["choices"][0]
    assert c["finish_reason"] == "stop" and c["stop_reason"] == stop and stop not in c["text"]
    assert full["choices"][0]["text"].startswith(c["text"])


def test_errors(emulator):
    emu = emulator(*FAST, "--api-key", "sekret", "--max-model-len", "100")
    auth = {"Authorization": "Bearer sekret"}
    status, _, raw, _ = post(emu.port, CHAT, chat_body(max_tokens=2))
    assert status == 401 and orjson.loads(raw) == {"error": "Unauthorized"}  # as vLLM 0.32
    assert get(emu.port, "/v1/models")[0] == 401
    assert get(emu.port, "/health")[0] == 200  # not behind the key, as in vLLM
    status, _, raw, _ = post(emu.port, CHAT, {**chat_body(max_tokens=2), "model": "nope"}, auth)
    err = orjson.loads(raw)["error"]
    assert (
        status == 404
        and err["type"] == "NotFoundError"
        and set(err) == {"message", "type", "param", "code"}
    )
    status, _, raw, _ = post(emu.port, CHAT, chat_body(max_tokens=200), auth)
    assert (
        status == 400
        and "max_tokens=200 cannot be greater than max_model_len=100"
        in orjson.loads(raw)["error"]["message"]
    )
    status, _, raw, _ = post(emu.port, COMPL, {"prompt": "x" * 500, "max_tokens": 1}, auth)
    assert status == 400
    assert post(emu.port, CHAT, chat_body(max_tokens=2), auth)[0] == 200


def test_queue_full_503(emulator):
    emu = emulator(
        "--emu-ttft-ms",
        "300",
        "--emu-itl-ms",
        "1",
        "--max-num-seqs",
        "1",
        "--max-num-queued-reqs",
        "1",
    )
    import gevent

    results = []
    jobs = [
        gevent.spawn(lambda: results.append(post(emu.port, CHAT, chat_body(max_tokens=1))[0]))
        for _ in range(4)
    ]
    gevent.joinall(jobs, raise_error=True)
    assert sorted(results) == [200, 200, 503, 503]


def test_endpoints(emulator):
    emu = emulator(
        *FAST,
        "--served-model-name",
        "a",
        "b",
        env={"CUDA_VISIBLE_DEVICES": "2,3", "VLLM_CPU_KVCACHE_SPACE": "7"},
    )
    assert emu.model == "a"
    models = orjson.loads(get(emu.port, "/v1/models")[2])
    assert [m["id"] for m in models["data"]] == ["a", "b"]
    assert post(emu.port, CHAT, {**chat_body(max_tokens=1), "model": "b"})[0] == 200
    assert get(emu.port, "/ping")[0] == 200
    ver = orjson.loads(get(emu.port, "/version")[2])
    assert ver["version"] and ver["emulator"]["env"]["CUDA_VISIBLE_DEVICES"] == "2,3"
    info = orjson.loads(get(emu.port, "/emulator/info")[2])
    assert info["env"]["VLLM_CPU_KVCACHE_SPACE"] == "7" and info["tp"] == 1 and info["cpu_affinity"]
    assert orjson.loads(get(emu.port, "/load")[2]) == {"server_load": 0}
    assert get(emu.port, "/nope")[0] == 404


def test_metrics_names(emulator):
    emu = emulator(*FAST)
    post(emu.port, CHAT, chat_body(max_tokens=4, stream=True))
    status, hdrs, body = get(emu.port, "/metrics")
    assert status == 200 and hdrs["content-type"].startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for g in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"):
        assert fams[g].type == "gauge"
    samples = {s.name: s for f in fams.values() for s in f.samples}
    for c in (
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:num_preemptions_total",
    ):
        assert c in samples and samples[c].labels["model_name"] == "locust-llm/emulator"
    assert samples["vllm:generation_tokens_total"].value == 4
    succ = [
        s for s in fams["vllm:request_success"].samples if s.labels["finished_reason"] == "length"
    ]
    assert succ[0].value == 1
    for h, first, last in (
        ("vllm:time_to_first_token_seconds", "0.001", "2560.0"),
        ("vllm:inter_token_latency_seconds", "0.01", "80.0"),
        ("vllm:e2e_request_latency_seconds", "0.3", "7680.0"),
        ("vllm:request_queue_time_seconds", "0.3", "7680.0"),
    ):
        les = [s.labels["le"] for s in fams[h].samples if s.name.endswith("_bucket")]
        assert les[0] == first and les[-2] == last and les[-1] == "+Inf"
        assert samples[h + "_count"].value >= 1
    assert samples["vllm:inter_token_latency_seconds_count"].value == 3


@pytest.mark.timing  # measures wall-clock timing: run alone, not beside other tests
def test_pacing_and_truth_log(emulator, tmp_path):
    log = tmp_path / "truth.jsonl"
    emu = emulator("--emu-ttft-ms", "40", "--emu-itl-ms", "15", "--emu-truth-log", str(log))
    wall0, t0 = time.time(), time.perf_counter()
    _, _, _, events = post(emu.port, CHAT, chat_body(max_tokens=10, stream=True))
    wall1 = time.time()
    ttft = events[0][0] - t0
    gaps = [b[0] - a[0] for a, b in zip(events[1:-2], events[2:-1])]
    assert 0.035 < ttft < 0.06
    assert all(0.010 < g < 0.022 for g in gaps), gaps
    emu.terminate_timed()
    lines = [orjson.loads(x) for x in log.read_text().splitlines()]
    rec = lines[0]
    assert rec["id"] == orjson.loads(events[0][1])["id"]
    assert len(rec["t_send"]) == 11  # role chunk + 10 tokens
    # scheduled against the clock from arrival: token k due at arrival + ttft + k * itl
    for k, t in enumerate(rec["t_send"][1:]):
        assert 0 <= t - (rec["t_arrival"] + 0.040 + k * 0.015) < 0.004
    # same clock as ours (CLOCK_MONOTONIC): the send precedes our receipt
    assert all(0 <= ev[0] - ts < 0.01 for ev, ts in zip(events[:-1], rec["t_send"]))
    # the kernel's transmit stamps (wall clock), one per chunk, spaced as the writes were
    tx = rec["t_tx"]
    assert len(tx) == 11 and None not in tx and wall0 <= tx[0] <= tx[-1] <= wall1
    for k in range(10):
        kernel, user = tx[k + 1] - tx[k], rec["t_send"][k + 1] - rec["t_send"][k]
        assert abs(kernel - user) < 0.002, (k, kernel, user)


def test_ingest_mode_batches_writes(emulator):
    emu = emulator("--emu-ttft-ms", "0", "--emu-itl-ms", "0")
    c = Conn(emu.port)
    status, _, pieces = c.request(
        "POST", CHAT, chat_body(max_tokens=5000, stream=True, ignore_eos=True)
    )
    pieces = list(pieces)
    c.close()
    data = b"".join(p for _, p in pieces)
    assert data.count(b"data: ") == 5000 + 2 and data.endswith(b"data: [DONE]\n\n")
    assert len(pieces) < 50  # many events per HTTP chunk, not one each


@pytest.mark.parametrize("kind", ["429", "500", "503", "400"])
def test_header_http_faults(emulator, kind):
    emu = emulator(*FAST)
    status, _, raw, _ = post(
        emu.port, CHAT, chat_body(max_tokens=2, stream=True), {"X-Return-Error": kind}
    )
    assert status == int(kind) and orjson.loads(raw)["error"]["code"] == int(kind)


def test_stream_faults(emulator):
    emu = emulator(*FAST)
    _, _, _, events = post(
        emu.port, CHAT, chat_body(max_tokens=10, stream=True), {"X-Return-Error": "midstream"}
    )
    assert orjson.loads(events[-2][1])["error"]["code"] == 500 and events[-1][1] == b"[DONE]"
    assert len(events) == 1 + 5 + 2
    for kind in ("truncate", "reset"):
        c = Conn(emu.port)
        status, _, pieces = c.request(
            "POST", CHAT, chat_body(max_tokens=10, stream=True), {"X-Return-Error": kind}
        )
        got = b""
        with pytest.raises((ConnectionError, OSError)):
            for _, p in pieces:
                got += p
        c.close()
        assert status == 200 and b"[DONE]" not in got and got.count(b"data: ") == 6
    # the server survives all of it
    assert post(emu.port, CHAT, chat_body(max_tokens=2))[0] == 200


def test_fault_rate_seeded(emulator):
    emu = emulator(*FAST, "--emu-fault-rate", "0.5", "--emu-fault-types", "429,503")
    codes = [post(emu.port, CHAT, chat_body(max_tokens=1))[0] for _ in range(30)]
    assert set(codes) == {200, 429, 503} and 5 < codes.count(200) < 25


def test_dead_fault_health(emulator):
    emu = emulator(*FAST)
    assert post(emu.port, CHAT, chat_body(max_tokens=1), {"X-Return-Error": "dead"})[0] == 503
    assert get(emu.port, "/health")[0] == 503
    assert post(emu.port, CHAT, chat_body(max_tokens=1))[0] == 503


def test_crash_after(emulator):
    emu = emulator(*FAST, "--emu-crash-after", "2")
    assert post(emu.port, CHAT, chat_body(max_tokens=1))[0] == 200
    assert post(emu.port, CHAT, chat_body(max_tokens=1))[0] == 200
    assert emu.proc.wait(5) == 3
    with pytest.raises(OSError):
        get(emu.port, "/health")


def test_startup_delay(emulator):
    emu = emulator(*FAST, "--emu-startup-delay", "0.6")
    assert get(emu.port, "/health")[0] == 503
    assert post(emu.port, CHAT, chat_body(max_tokens=1))[0] == 503
    time.sleep(0.7)
    assert get(emu.port, "/health")[0] == 200


def test_sigterm_fast(emulator):
    emu = emulator(*FAST)
    assert emu.terminate_timed() < 1.0 and emu.proc.returncode == 0


def test_flag_spelling(emulator):
    emu = emulator(
        "my/model", "--served_model_name", "m1", "-tp", "2", "--max_num_seqs=7", "--no-enable-prefix-caching",
        "--trust-remote-code", "--swap-space", "4", "--uvicorn_log_level=info", *FAST,
    )  # fmt: skip
    info = orjson.loads(get(emu.port, "/emulator/info")[2])
    a = info["args"]
    assert info["model"] == "my/model" and a["served_model_names"] == ["m1"]
    assert a["tp"] == 2 and a["max_num_seqs"] == 7 and a["enable_prefix_caching"] is False
    assert info["ignored_flags"] == [
        "--trust-remote-code",
        "--swap-space",
        "4",
        "--uvicorn_log_level=info",
    ]
    err = emu.stderr_text()
    warn = [x for x in err.splitlines() if "ignoring vLLM flags" in x]
    assert len(warn) == 1 and "--swap-space 4" in warn[0]


def test_keepalive_many_requests_one_connection(emulator):
    emu = emulator(*FAST)
    c = Conn(emu.port)
    for _ in range(5):
        status, _, pieces = c.request("POST", CHAT, chat_body(max_tokens=3, stream=True))
        assert status == 200 and b"".join(p for _, p in pieces).endswith(b"data: [DONE]\n\n")
    c.close()


def test_idle_keepalive_connection_closed_as_uvicorn_does(emulator):
    from locust_llm.emulator.cli import parse_args

    assert parse_args([]).timeout_keep_alive == 5.0  # uvicorn's default, so vLLM's
    assert parse_args(["--emu-timeout-keep-alive", "0"]).timeout_keep_alive == 0.0  # never
    emu = emulator(*FAST, env={"VLLM_HTTP_TIMEOUT_KEEP_ALIVE": "0.3"})  # vLLM's knob
    c = Conn(emu.port)
    for _ in range(2):  # busy: kept alive
        status, _, pieces = c.request("POST", CHAT, chat_body(max_tokens=2, stream=True))
        assert status == 200 and b"".join(p for _, p in pieces).endswith(b"[DONE]\n\n")
    c.sock.settimeout(5)
    assert c.sock.recv(1) == b""  # idle past the timeout: closed by the server
    c.close()


@pytest.mark.skipif(not shutil.which("curl"), reason="no curl")
def test_curl_streaming(emulator):
    emu = emulator(*FAST)
    body = orjson.dumps(chat_body(max_tokens=4, stream=True)).decode()
    out = subprocess.run(
        ["curl", "-sSN", "--fail", f"{emu.url}{CHAT}", "-H", "Content-Type: application/json", "-d", body],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    events = [x for x in out.stdout.split("\n\n") if x]
    assert len(events) == 6 and events[-1] == "data: [DONE]"


def test_geventhttpclient_streaming(emulator):
    from geventhttpclient import HTTPClient

    emu = emulator(*FAST)
    client = HTTPClient("127.0.0.1", emu.port)
    for _ in range(2):  # keep-alive through the pool
        r = client.post(CHAT, body=orjson.dumps(chat_body(max_tokens=4, stream=True)),
                        headers={"Content-Type": "application/json"})  # fmt: skip
        body = b""
        while True:
            part = r.read(4096)
            if not part:
                break
            body += part
        events = [e for e in body.split(b"\n\n") if e]
        assert r.status_code == 200 and events[-1] == b"data: [DONE]" and len(events) == 6
        assert r.get("content-type").startswith("text/event-stream")
    client.close()
