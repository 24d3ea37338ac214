"""Chat traffic spread over several models (seed 004), for scenario files.

The mix comes from $LOCUST_LLM_MODEL_MIX ("name=weight,name=weight"; see
locust_llm.workload.mix) so a scenario file sets it through `env = {...}`. Each user draws
from its own seeded generator, so two runs (two balancing policies) see the same sequence.
"""

import itertools
import os
import random

from locust import between

from locust_llm import OpenAIChatUser
from locust_llm.workload.mix import parse_model_mix

MIX = parse_model_mix(os.environ.get("LOCUST_LLM_MODEL_MIX", ""))
_ids = itertools.count()


class MultiModelChatUser(OpenAIChatUser):
    wait_time = between(0, 0)

    def on_start(self) -> None:
        self.rng = random.Random(1000 + next(_ids))

    @property
    def model(self) -> str:
        """Every request asks for a model drawn from the mix (the base task reads this)."""
        return MIX.choose(self.rng)
