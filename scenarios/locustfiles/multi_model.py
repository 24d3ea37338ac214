"""Chat traffic spread over several models, for scenario files (lb-policies.toml).

The mix comes from $LOCUST_LLM_MODEL_MIX ("name=weight,name=weight"; see
locust_llm.workload.mix) so a scenario file sets it through `env = {...}`. Each user draws
from its own seeded generator, so two runs (two balancing policies) see the same sequence.

Routing: the backends' nginx has one upstream per model and routes `/models/<name>/v1/...`
to it (locust_llm/backends/nginx.py), so each request goes to that prefix; Locust's stats get
one row per model. With a single model the plain `/v1/...` path is used.
"""

import itertools
import os
import random

from locust import between, task

from locust_llm import OpenAIChatUser
from locust_llm.workload.mix import parse_model_mix

MIX = parse_model_mix(os.environ.get("LOCUST_LLM_MODEL_MIX", ""))
CHAT = "/v1/chat/completions"
_ids = itertools.count()


class MultiModelChatUser(OpenAIChatUser):
    wait_time = between(0, 0)  # closed loop

    def on_start(self) -> None:
        self.rng = random.Random(1000 + next(_ids))

    @task
    def chat_once(self) -> None:
        self.chat(self.llm.default_prompt())

    def chat(self, messages, max_tokens=None, **extra):
        """Every request asks a model of the mix."""
        model = extra.pop("model", None) or MIX.choose(self.rng)
        if len(MIX.models) > 1:
            self.path = f"/models/{model}{CHAT}"
            extra.setdefault("name", f"{CHAT} [{model}]")
        return super().chat(messages, max_tokens, model=model, **extra)
