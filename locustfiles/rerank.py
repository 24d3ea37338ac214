"""Rerank --llm-batch-size documents against one query per /v1/rerank request; a pooling
section (latency, documents/s, input tokens/s) in the summary at quit.

    locust -f locustfiles/rerank.py --host http://127.0.0.1:8000 --headless -u 8 -t 1m \
        --llm-batch-size 32 --llm-summary reports/rerank/summary.json

Query and documents come from the prompt workload: --llm-dataset (each entry's text), else
synthetic prompts of --llm-prompt-tokens / --llm-prompt-dist tokens.
"""

from locust import constant, task

from locust_llm import OpenAIEmbeddingsUser
from locust_llm.options import LLMOptions
from locust_llm.pooling import RERANK_PATH
from locust_llm.workload import locust_options as wo

wo.register()  # --llm-dataset, --llm-batch-size and the other workload options


class RerankUser(OpenAIEmbeddingsUser):
    wait_time = constant(0)  # closed loop
    path = RERANK_PATH  # what the pre-flight checks
    _prompts = None

    @task
    def rerank_batch(self) -> None:
        if RerankUser._prompts is None:
            RerankUser._prompts = wo.prompt_source(self.environment)
        prompts = RerankUser._prompts
        n = LLMOptions.of(self.environment.parsed_options).batch_size
        self.rerank(next(prompts).text, [next(prompts).text for _ in range(n)])
