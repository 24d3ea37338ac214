"""Multi-turn chat: each user holds a conversation, resends the growing history each turn,
appends the model's reply and waits ``--llm-think-time`` seconds before the next turn.

    locust -f locustfiles/multiturn.py --headless -u 16 -r 4 -t 5m -H http://localhost:8000 \
        --llm-turns uniform:2:6 --llm-think-time uniform:1:5 --llm-prompt-dist normal:128:32

    # or turns and reply lengths from a ShareGPT file:
    locust -f locustfiles/multiturn.py ... --llm-dataset sharegpt.json

Why: history resent every turn makes prompts grow and exercises prefix caching across
turns, which single-turn benchmarks never show. A failed turn ends the conversation (its
history would be wrong) and the user starts a new one.
"""

from __future__ import annotations

import gevent
from locust import constant, events, task

from locust_llm.users import OpenAIChatUser
from locust_llm.workload import locust_options as wo

wo.register()

_SOURCE: dict = {}


@events.test_stop.add_listener
def _reset(**_kw):
    _SOURCE.clear()


def _source(environment):
    if "src" not in _SOURCE:
        _SOURCE["src"] = wo.conversation_source(environment)
    return _SOURCE["src"]


class MultiTurnUser(OpenAIChatUser):
    wait_time = constant(0)
    conversation = None

    @task
    def turn(self) -> None:
        conv = self.conversation
        if conv is None or conv.done:
            conv = self.conversation = _source(self.environment).next()
        p = conv.next_request()
        res = self.chat(
            p.chat_messages(),
            max_tokens=p.max_tokens,
            prompt_tokens=p.prompt_tokens,
            turn=conv.turn - 1,  # next_request() moved on to the next one
            session_id=conv.session_id,
        )
        if res.error is not None:
            self.conversation = None
            return
        conv.add_reply(res.text)
        if not conv.done:
            gevent.sleep(conv.think_time())
