"""One inference request, read and checked as vLLM's OpenAI front end checks it, and its plan.

``read`` turns the WSGI environ into a :class:`Request` or raises :class:`Reject` with vLLM's
status and message; ``plan_output`` decides how many tokens it generates and why it stops.
Nothing here touches the engine or the socket (the HTTP front in ``server`` does).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson

from . import text as textmod
from .cli import Config
from .prefix_cache import block_hashes


class Reject(Exception):
    """The request is answered with an error status before it reaches the engine."""

    def __init__(self, code: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


@dataclass(frozen=True)
class Request:
    """A request that passed vLLM's checks."""

    body: dict
    model: str | None  # as asked; None = the first served name
    prompt_text: str
    prompt_tokens: int
    blocks: tuple  # prefix-cache keys of the prompt's full blocks (empty without caching)
    max_tokens: int | None
    limit: int  # output tokens the context leaves

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


@dataclass(frozen=True)
class OutputPlan:
    """How the answer ends: tokens, finish and stop reason, and where its text starts."""

    n: int
    finish: str
    stop_reason: str | None
    last_text: bytes | None  # the last token's text when a stop string cut it
    start: int


def read(cfg: Config, environ: dict, chat: bool) -> Request:
    """Parse and check the body; raises Reject (400/404) as vLLM would."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
        req = orjson.loads(raw)
        if not isinstance(req, dict):
            raise ValueError("the body must be a JSON object")
    except ValueError as e:
        raise Reject(400, f"Invalid request body: {e}") from None
    model = req.get("model")
    if model is not None and model not in cfg.served_model_names:
        aliases = ", ".join(cfg.served_model_names)
        raise Reject(404, f"The model `{model}` does not exist. Valid aliases: {aliases}.", "model")
    try:
        if chat:
            messages = req.get("messages")
            if not isinstance(messages, list) or not messages:
                raise ValueError("messages must be a non-empty list")
            prompt_text, prompt_tokens = textmod.chat_prompt(messages)
        else:
            prompt_text, prompt_tokens = textmod.completion_prompt(req.get("prompt"))
    except ValueError as e:
        raise Reject(400, str(e)) from None
    if (req.get("n") or 1) != 1:
        raise Reject(400, "The emulator supports n=1 only.", "n")
    max_tokens = req.get("max_completion_tokens") if chat else None
    if max_tokens is None:
        max_tokens = req.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise Reject(400, "max_tokens must be at least 1.", "max_tokens")
    limit = cfg.max_model_len - prompt_tokens
    if max_tokens is not None and max_tokens > cfg.max_model_len:
        raise Reject(
            400,
            f"max_tokens={max_tokens} cannot be greater than max_model_len="
            f"{cfg.max_model_len}. Please request fewer output tokens. "
            f"(parameter=max_tokens, value={max_tokens})",
            "max_tokens",
        )
    if limit < 0:
        raise Reject(
            400,
            f"This model's maximum context length is {cfg.max_model_len} tokens. However, "
            f"your prompt contains at least {prompt_tokens} input tokens, which exceeds this "
            "limit even without any output tokens. Please reduce the length of the input "
            f"prompt. (parameter=input_tokens, value={prompt_tokens})",
            "input_tokens",
        )
    if limit <= 0 or (max_tokens is not None and max_tokens > limit):
        raise Reject(
            400,
            f"This model's maximum context length is {cfg.max_model_len} tokens. However, you "
            f"requested {prompt_tokens + (max_tokens or 0)} tokens ({prompt_tokens} in the "
            f"messages, {max_tokens or 0} in the completion). Please reduce the length of the "
            "messages or completion.",
            "max_tokens" if limit > 0 else "messages" if chat else "prompt",
        )
    blocks: tuple = ()
    if cfg.enable_prefix_caching:
        units = (
            textmod.chat_units(req["messages"])
            if chat
            else textmod.completion_units(req.get("prompt"))
        )
        blocks = block_hashes(units, cfg.block_size, textmod.unit_width(units))
    return Request(req, model, prompt_text, prompt_tokens, blocks, max_tokens, limit)


def plan_output(
    cfg: Config, r: Request, text: textmod.TextSource, rng: random.Random
) -> OutputPlan:
    """Tokens to generate and the finish: max_tokens, a seeded EOS, or a stop string."""
    req = r.body
    min_tokens = int(req.get("min_tokens") or 0)
    if r.max_tokens is None:
        n = min(max(cfg.natural_len, min_tokens), r.limit)
        finish = "stop" if n < r.limit else "length"
    else:
        n, finish = r.max_tokens, "length"
    if not req.get("ignore_eos"):
        eos = textmod.draw_eos_length(rng, cfg.eos_prob, min_tokens, n)
        if eos is not None:
            n, finish = eos, "stop"
    start = text.offset(r.prompt_text)
    stop = req.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop:
        k, last, matched = textmod.apply_stop(text.words_at(start, n), list(stop))
        if matched is not None:
            return OutputPlan(k, "stop", matched, textmod.escape(last), start)
    return OutputPlan(n, finish, None, None, start)
