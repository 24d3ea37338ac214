"""One request of each kind real vLLM refuses; each must be its own clear failure row.

(A wrong API key is the same locustfile run with `--llm-api-key` set to another key.)"""

from locust import constant, task

from locust_llm import OpenAIChatUser, OpenAICompletionsUser


class Errors(OpenAIChatUser):
    wait_time = constant(0.2)

    @task
    def unknown_model(self):
        self.chat([{"role": "user", "content": "x"}], max_tokens=2, model="no-such-model")


class CompletionErrors(OpenAICompletionsUser):
    wait_time = constant(0.2)

    @task
    def max_tokens_beyond_max_model_len(self):
        self.complete("x", max_tokens=100000)

    @task
    def prompt_too_long(self):
        self.complete(" ".join(["word"] * 1200), max_tokens=4)
