"""vLLM-compatible emulator: `python -m locust_llm.emulator [MODEL] [vllm serve flags] [--emu-*]`.

Modules: ``cli`` (flags), ``profiles`` (step-time/KV models), ``engine`` (scheduling),
``prefix_cache`` (vLLM's block prefix cache), ``text`` (prompt counting, output text), ``wire``
(vLLM's JSON/SSE bytes), ``faults``, ``metrics`` (/metrics), ``truthlog`` (per-token write
times), ``server`` (HTTP routes), ``request`` (request checks), ``output`` (answer writing).
Knows nothing of Locust.
"""

READY_PREFIX = "locust-llm emulator: serving "
