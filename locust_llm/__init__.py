"""locust-llm: load-test LLM servers with Locust, measured the way `vllm bench serve` measures.

The Locust-facing names are imported lazily: importing Locust monkey-patches the standard
library with gevent, which the emulator, the planners and the report writers must not pay for.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "OpenAIChatUser": "locust_llm.users",
    "OpenAICompletionsUser": "locust_llm.users",
    "LLMUser": "locust_llm.users",
    "OpenAIEmbeddingsUser": "locust_llm.pooling_user",
    "LLMResult": "locust_llm.metrics.record",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'locust_llm' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
