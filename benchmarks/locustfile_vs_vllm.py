"""Exactly BENCH_REQUESTS streamed /v1/completions requests over all users, then quit.

`vllm bench serve --num-prompts N --max-concurrency C` sends N requests through C slots and
ends when the last one completes; this does the same with C closed-loop users. (locust-plugins'
`--iterations` quits only when the last user notices it is alone, which can miss and hang.)
"""

import os

import gevent
from locust import constant, task
from locust.exception import StopUser

from locust_llm import OpenAICompletionsUser

LIMIT = int(os.environ.get("BENCH_REQUESTS", "100"))
_sent = 0
_done = 0


class BenchUser(OpenAICompletionsUser):
    wait_time = constant(0)

    @task
    def complete_once(self) -> None:
        global _sent, _done
        if _sent >= LIMIT:
            raise StopUser()
        _sent += 1
        try:
            self.complete(self.llm.default_prompt())
        finally:
            _done += 1
            if _done == LIMIT:
                gevent.spawn(self.environment.runner.quit)
