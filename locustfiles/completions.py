"""Stream /v1/completions with a synthetic prompt (same options as chat.py)."""

from locust import constant, task

from locust_llm import OpenAICompletionsUser


class CompletionsUser(OpenAICompletionsUser):
    wait_time = constant(0)

    @task
    def complete_once(self) -> None:
        self.complete(self.llm.default_prompt())
