"""Stream /v1/chat/completions with a synthetic prompt; LLM metrics in stats, summary at quit.

    locust -f locustfiles/chat.py                      # web UI, built-in emulator
    locust -f locustfiles/chat.py --host http://127.0.0.1:8000 --headless -u 50 -r 10 -t 2m \
        --llm-slo 'ttft_p95<=800ms' --llm-summary reports/chat/summary.json
"""

from locust import constant, task

from locust_llm import OpenAIChatUser


class ChatUser(OpenAIChatUser):
    wait_time = constant(0)  # closed loop: the next request as soon as the last one ends

    @task
    def chat_once(self) -> None:
        # a synthetic prompt of --llm-prompt-tokens tokens, --llm-max-tokens out
        self.chat(self.llm.default_prompt())
