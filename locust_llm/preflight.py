"""The pre-flight before any user spawns: the options and files, then the server.

Why: a dead port, a wrong model name or a typo in a dataset path otherwise shows up as
thousands of identical failures (or tracebacks) for the whole run. ``vllm bench serve`` sends
one test request first and stops with its error; so does this: ``/v1/models`` must answer and
list the model, and one streamed request of one token must come back as a token stream.

Two halves, so each can run where it belongs:

* :func:`check_options` runs the registered option checks (the plugin's and the workload
  locustfiles' own: dataset file, tokenizer, model mix ...). No network.
* :func:`check_server` talks to the server. Headless/autostart runs call it at start, the
  web UI when START is pressed (the host may be typed into the form).

Both raise :class:`PreflightError` with one line saying what was wrong and what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from locust_llm.errors import describe_connect_error

__all__ = [
    "PreflightError",
    "ServerCheck",
    "add_option_check",
    "check_client_options",
    "check_options",
    "check_server",
    "first_model",
    "llm_path",
    "preflight",
]

SKIP_HINT = "pass --llm-skip-preflight to start the users anyway"

OptionCheck = Callable[[Any], None]
_OPTION_CHECKS: list[OptionCheck] = []


class PreflightError(RuntimeError):
    """The run cannot measure anything useful; the message is one line for the user."""


def add_option_check(fn: OptionCheck) -> OptionCheck:
    """Register ``fn(parsed_options)`` (raises ``PreflightError``); once per function."""
    if fn not in _OPTION_CHECKS:
        _OPTION_CHECKS.append(fn)
    return fn


def check_options(options: Any) -> None:
    for fn in list(_OPTION_CHECKS):
        fn(options)


@add_option_check
def check_client_options(options: Any) -> None:
    """The client's own behaviour options (cancellation, images), as the runtime reads them."""
    from locust_llm.options import LLMOptions
    from locust_llm.workload.cancel import cancel_plan
    from locust_llm.workload.distributions import SpecError
    from locust_llm.workload.images import image_plan

    o = LLMOptions.of(options)
    try:
        cancel_plan(o.cancel_rate, o.cancel_after, o.seed)
        image_plan(o.images, o.image_size, o.seed)
    except SpecError as e:
        raise PreflightError(str(e)) from None


@dataclass
class ServerCheck:
    """What the server check found: the model it will ask for and what the server lists."""

    model: str
    served: list[str]


def _client(url: Any, timeout: float) -> Any:
    from geventhttpclient import HTTPClient

    return HTTPClient.from_url(url, connection_timeout=5.0, network_timeout=timeout)


def list_models(host: str, headers: dict[str, str], timeout: float) -> list[str]:
    from geventhttpclient import URL

    from locust_llm.protocol import error_message

    url = URL(host.rstrip("/") + "/v1/models")
    try:
        client = _client(url, timeout)
        try:
            resp = client.get(url.request_uri, headers=headers)
            body = resp.read()
            status = resp.status_code
        finally:
            client.close()
    except Exception as e:
        raise PreflightError(describe_connect_error(e, str(url))) from None
    if status != 200:
        raise PreflightError(f"GET {url}: {error_message(status, body)}")
    try:
        return [str(m["id"]) for m in orjson.loads(body)["data"]]
    except Exception:
        raise PreflightError(
            f"GET {url}: not an OpenAI model list: is this an OpenAI-compatible server?"
        ) from None


def _stream_once(host: str, path: str, body: dict[str, Any], headers: dict, timeout: float) -> None:
    """One streamed request: 200, an event stream, at least one token chunk, a clean end."""
    from geventhttpclient import URL

    from locust_llm.protocol import DONE, ProtocolError, error_message, parse_chunk
    from locust_llm.sse import SSEError, SSEParser

    url = URL(host.rstrip("/") + path)
    what = f"POST {url}"
    try:
        client = _client(url, timeout)
        try:
            resp = client.post(
                url.request_uri,
                body=orjson.dumps(body),
                headers={**headers, "Content-Type": "application/json",
                         "Accept": "text/event-stream", "Accept-Encoding": "identity"},
            )  # fmt: skip
            status = resp.status_code
            ctype = resp.get("content-type") or ""
            data = resp.read()
        finally:
            client.close()
    except Exception as e:
        raise PreflightError(f"{what}: {describe_connect_error(e, str(url))}") from None
    if status != 200:
        raise PreflightError(f"{what}: {error_message(status, data)}")
    if ctype and not ctype.startswith("text/event-stream"):
        raise PreflightError(
            f"{what}: answered {ctype!r}, not an event stream: the server does not stream"
        )
    tokens = 0
    done = False
    try:
        for ev in SSEParser().feed(data):
            c = parse_chunk(ev.data)
            if c is DONE:
                done = True
            elif c.error is not None:
                raise PreflightError(f"{what}: error event in the stream: {c.error}")
            elif c.is_token:
                tokens += 1
    except (ProtocolError, SSEError) as e:
        raise PreflightError(f"{what}: malformed stream: {e}") from None
    if tokens == 0:
        raise PreflightError(f"{what}: the stream carried no token")
    if not done:
        raise PreflightError(f"{what}: the stream ended without [DONE]")


def _pool_once(host: str, path: str, model: str, headers: dict, timeout: float) -> None:
    """One pooling request (embeddings or rerank) of one tiny item: 200 and a valid answer;
    a 404 without an OpenAI error object means the server has no such route."""
    from geventhttpclient import URL

    from locust_llm.pooling import (
        RERANK_PATH,
        embeddings_body,
        not_served,
        parse_answer,
        rerank_body,
        route_missing,
    )
    from locust_llm.protocol import ProtocolError, error_message

    url = URL(host.rstrip("/") + path)
    what = f"POST {url}"
    if path == RERANK_PATH:
        body = rerank_body(model, "Hello", ["Hello"])
    else:
        body = embeddings_body(model, ["Hello"])
    try:
        client = _client(url, timeout)
        try:
            resp = client.post(
                url.request_uri,
                body=orjson.dumps(body),
                headers={**headers, "Content-Type": "application/json"},
            )
            status, data = resp.status_code, resp.read()
        finally:
            client.close()
    except Exception as e:
        raise PreflightError(f"{what}: {describe_connect_error(e, str(url))}") from None
    if route_missing(status, data):
        raise PreflightError(not_served(path, host))
    if status != 200:
        raise PreflightError(f"{what}: {error_message(status, data)}")
    try:
        parse_answer(path, data, 1)
    except ProtocolError as e:
        raise PreflightError(f"{what}: {e}") from None


def check_server(
    host: str | None,
    *,
    path: str | None,
    model: str | None,
    auth_header: str | None,
    timeout: float = 60.0,
    models_wanted: list[str] | None = None,
) -> ServerCheck:
    """Server reachable, model(s) served, one streamed one-token request works."""
    from locust_llm.protocol import CHAT_PATH, chat_body, completions_body

    if not host:
        raise PreflightError("no host to test: pass --host (or leave it out to use the emulator)")
    headers = {"Authorization": auth_header} if auth_header else {}
    served = list_models(host, headers, timeout)
    if not served and not model:
        raise PreflightError(f"{host}/v1/models lists no model: pass --llm-model")
    chosen = model or served[0]
    for m in [chosen, *(models_wanted or [])]:
        if served and m not in served:
            raise PreflightError(
                f"model {m!r} is not served by {host} (its /v1/models lists "
                f"{', '.join(served[:5])}{' ...' if len(served) > 5 else ''}): "
                "fix --llm-model / --llm-model-mix"
            )
    from locust_llm.pooling import POOLING_PATHS

    if path in POOLING_PATHS:
        _pool_once(host, path, chosen, headers, timeout)
    elif path:
        if path == CHAT_PATH:
            body = chat_body(chosen, [{"role": "user", "content": "Hello"}], 1)
        else:
            body = completions_body(chosen, "Hello", 1)
        _stream_once(host, path, body, headers, timeout)
    return ServerCheck(model=chosen, served=served)


def first_model(host: str | None, auth_header: str | None, timeout: float) -> str:
    """The first id ``/v1/models`` lists (what vLLM serves), for runs without ``--llm-model``.
    Raises :class:`PreflightError` saying what was wrong; callers add how to skip the lookup."""
    if not host:
        raise PreflightError("no host to ask for models: pass --host")
    headers = {"Authorization": auth_header} if auth_header else {}
    ids = list_models(host, headers, timeout)
    if not ids:
        raise PreflightError(f"{host.rstrip('/')}/v1/models: the server lists no models")
    return ids[0]


def llm_path(environment: Any) -> str | None:
    """The endpoint the test's LLM users stream from (the first such user class)."""
    for cls in getattr(environment, "user_classes", None) or []:
        path = getattr(cls, "path", None)
        if isinstance(path, str) and path.startswith("/v1/") and hasattr(cls, "stream_request"):
            return path
    return None


def preflight(environment: Any, rt: Any) -> None:
    """Server reachable, model(s) served, one streamed request (skipped by
    ``--llm-skip-preflight`` or when no LLM user is in the test). ``rt``: the runtime."""
    from locust_llm.credentials import redact

    rt.configure()  # the web form may have changed --llm-model
    opts = rt.options
    if opts.skip_preflight:
        return
    path = llm_path(environment)
    if path is None:
        return
    mix = []
    if opts.model_mix:
        from locust_llm.workload.mix import parse_model_mix

        mix = parse_model_mix(opts.model_mix).models
    try:
        found = check_server(
            environment.host,
            path=path,
            model=rt.model,
            auth_header=rt.auth_header,
            timeout=min(rt.timeout or 60.0, 60.0),
            models_wanted=mix,
        )
    except PreflightError as e:
        raise PreflightError(redact(str(e), rt.api_key)) from None
    if rt.model is None:
        rt.model = found.model
    import logging

    logging.getLogger("locust_llm").info(
        "locust-llm: pre-flight passed: %s serves %s", environment.host, found.model
    )
