"""Two request names and two models, for the per-name and per-model figures."""

from itertools import cycle

from locust import constant, task

from locust_llm import OpenAIChatUser

MODELS = cycle(["m1", "m2"])


class NamedUser(OpenAIChatUser):
    wait_time = constant(0)

    @task(2)
    def short(self) -> None:
        self.chat("say something short", max_tokens=4, name="short", model=next(MODELS))

    @task(1)
    def long(self) -> None:
        self.chat("say something long", max_tokens=24, name="long", model=next(MODELS))
