"""How many output tokens a streamed request produced, and how many each chunk carried.

The server's ``usage.completion_tokens`` when it sends usage (as vLLM's benchmark takes it);
else a tokenizer over the generated text, when one is given (vLLM's benchmark does the same
with the model's tokenizer); else the chunks that carried generated text. The role-only
first chunk and empty-delta chunks (a finish chunk with no text) carry no token, so counting
every chunk would inflate output tokens and deflate TPOT.
"""

from __future__ import annotations

from typing import Any, Protocol

from locust_llm.metrics.record import LLMResult

__all__ = ["chunk_tokens", "count_output", "token_weighted_itl"]


class _Counter(Protocol):
    def count(self, text: str) -> int: ...


def count_output(
    res: LLMResult,
    usage: dict[str, Any] | None,
    prompt_tokens: int | None,
    tokenizer: _Counter | None,
    reasoning: list[str] | None = None,
) -> None:
    """Set ``output_tokens`` (and its source), ``prompt_tokens`` and the usage details."""
    if usage:
        res.output_tokens = int(usage.get("completion_tokens") or 0)
        res.output_tokens_source = "usage"
        res.prompt_tokens = usage.get("prompt_tokens", prompt_tokens)
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict) and details.get("cached_tokens") is not None:
            res.cached_tokens = int(details["cached_tokens"])
        details = usage.get("completion_tokens_details")
        if isinstance(details, dict) and details.get("reasoning_tokens") is not None:
            res.reasoning_tokens = int(details["reasoning_tokens"])
        return
    res.prompt_tokens = prompt_tokens
    if tokenizer is not None:
        text = "".join(reasoning or ()) + res.text
        res.output_tokens = tokenizer.count(text) if text else 0
        res.output_tokens_source = "tokenizer"
    else:
        res.output_tokens = res.content_chunks
        res.output_tokens_source = "chunks"


def chunk_tokens(cumulative: list[int]) -> list[int]:
    """Tokens per chunk from continuous usage stats (cumulative ``completion_tokens``)."""
    out = []
    prev = 0
    for n in cumulative:
        out.append(max(n - prev, 0))
        prev = max(n, prev)
    return out


def token_weighted_itl(w: Any, r: LLMResult) -> None:
    """Token-weighted ITL from per-chunk token counts: the time before each chunk after
    the first token's, spread evenly over the tokens it carried (k samples of gap/k);
    gaps before chunks with no token carry over to the next one that has some."""
    ct = r.chunk_tokens or []
    w.usage_chunks += sum(1 for k in ct if k)
    w.usage_chunk_tokens += sum(ct)
    if len(ct) != len(r.itl) + 1:
        return
    out: list[float] = []
    seen_token = ct[0] > 0
    pending = 0.0
    for gap, k in zip(r.itl, ct[1:], strict=True):
        if not seen_token:
            seen_token = k > 0
            continue
        pending += gap
        if k:
            out.extend([pending / k] * k)
            pending = 0.0
    if out:
        w.sketches["itl_token"].add_many(out)
