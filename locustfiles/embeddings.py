"""Embed batches of --llm-batch-size inputs per /v1/embeddings request; a pooling section
(latency, items/s, input tokens/s) in the summary at quit.

    locust -f locustfiles/embeddings.py --host http://127.0.0.1:8000 --headless -u 8 -t 1m \
        --llm-batch-size 16 --llm-prompt-tokens 256 --llm-summary reports/embed/summary.json

Inputs come from the prompt workload: --llm-dataset (each entry's text), else synthetic
prompts of --llm-prompt-tokens / --llm-prompt-dist tokens.
"""

from locust import constant, task

from locust_llm import OpenAIEmbeddingsUser
from locust_llm.options import LLMOptions
from locust_llm.workload import locust_options as wo

wo.register()  # --llm-dataset, --llm-batch-size and the other workload options


class EmbeddingsUser(OpenAIEmbeddingsUser):
    wait_time = constant(0)  # closed loop
    _prompts = None

    @task
    def embed_batch(self) -> None:
        if EmbeddingsUser._prompts is None:
            EmbeddingsUser._prompts = wo.prompt_source(self.environment)
        n = LLMOptions.of(self.environment.parsed_options).batch_size
        self.embed([next(EmbeddingsUser._prompts).text for _ in range(n)])
