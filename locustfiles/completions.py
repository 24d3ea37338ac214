"""Stream /v1/completions with a synthetic prompt (same options as chat.py)."""

from locust import between

from locust_llm import OpenAICompletionsUser


class CompletionsUser(OpenAICompletionsUser):
    wait_time = between(0, 0)
