import os
import shutil
import subprocess

import pytest

from locust_llm.backends import BackendError
from locust_llm.backends.nginx import (
    Upstream,
    command,
    find_nginx,
    parse_access_log,
    prepare_run_dir,
    render_config,
    upstream_counts,
)

UPS = [Upstream("m", ("127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"))]


def test_render_single_model(tmp_path):
    c = render_config(tmp_path, UPS, listen="127.0.0.1:8000")
    d = str(tmp_path.resolve())
    for needle in [
        "zone llm_0 256k;",
        "least_conn;",
        "server 127.0.0.1:8002 max_fails=3 fail_timeout=10s;",
        "keepalive 256;",
        "keepalive_timeout 4s;",
        "proxy_buffering off;",
        "proxy_request_buffering off;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "gzip off;",
        "proxy_read_timeout 3600s;",
        "proxy_next_upstream error timeout;",
        "$upstream_addr",
        "$upstream_response_time",
        "stub_status;",
        f"pid {d}/nginx.pid;",
        f"error_log {d}/nginx-error.log",
        f"access_log {d}/access.log llm;",
        f"proxy_temp_path {d}/nginx-tmp/proxy;",
        f"client_body_temp_path {d}/nginx-tmp/client_body;",
        "listen 127.0.0.1:8000;",
        "proxy_pass http://llm_0;",
    ]:
        assert needle in c, needle
    assert "map $http_x_model" not in c and "user " not in c


@pytest.mark.parametrize(
    "method,line",
    [("round_robin", None), ("hash", "hash $http_x_session_id consistent;"),
     ("random_two_least_conn", "random two least_conn;")],
)  # fmt: skip
def test_methods(tmp_path, method, line):
    c = render_config(tmp_path, UPS, method=method)
    assert "least_conn;" not in c.replace("random two least_conn;", "")
    if line:
        assert line in c


def test_multi_model_routing(tmp_path):
    ups = [
        Upstream("meta-llama/Llama-3.1-8B", ("127.0.0.1:1",)),
        Upstream('q"wen', ("127.0.0.1:2",)),
    ]
    c = render_config(tmp_path, ups)
    assert "map $http_x_model $llm_upstream {" in c and "default llm_0;" in c
    assert '"meta-llama/Llama-3.1-8B" llm_0;' in c and '"q\\"wen" llm_1;' in c
    assert 'location "/models/meta-llama/Llama-3.1-8B/" {' in c
    assert "proxy_pass http://llm_1/;" in c and "proxy_pass http://$llm_upstream;" in c


def test_bad_method(tmp_path):
    with pytest.raises(BackendError, match="unknown lb"):
        render_config(tmp_path, UPS, method="fastest")


@pytest.mark.skipif(
    shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx"), reason="no nginx"
)
def test_real_nginx_accepts_config(tmp_path):
    ups = [Upstream("a", ("127.0.0.1:1", "127.0.0.1:2")), Upstream("b", ("127.0.0.1:3",))]
    for method in ("least_conn", "round_robin", "hash", "random_two_least_conn"):
        user = "root" if os.geteuid() == 0 else None
        (tmp_path / "nginx.conf").write_text(render_config(tmp_path, ups, method=method, user=user))
        prepare_run_dir(tmp_path)
        argv = command(find_nginx(), tmp_path)[:-2] + ["-t", "-q"]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr


def test_missing_nginx_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCUST_LLM_NGINX", str(tmp_path / "nope"))
    with pytest.raises(BackendError, match="apt-get install nginx"):
        find_nginx()


def test_access_log_parsing():
    text = (
        '{"time":1.5,"upstream":"127.0.0.1:1","status":200}\n'
        "garbage\n"
        '{"time":1.6,"upstream":"127.0.0.1:2, 127.0.0.1:1","status":200}\n'
    )
    entries = parse_access_log(text)
    assert len(entries) == 2
    assert upstream_counts(entries) == {"127.0.0.1:1": 2}
    assert upstream_counts(entries, final_only=False) == {"127.0.0.1:1": 2, "127.0.0.1:2": 1}
