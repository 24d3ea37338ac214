"""Stream /v1/chat/completions with a synthetic prompt; LLM metrics in stats, summary at quit.

    locust -f locustfiles/chat.py                      # web UI, built-in emulator
    locust -f locustfiles/chat.py --host http://127.0.0.1:8000 --headless -u 50 -r 10 -t 2m \
        --llm-slo 'ttft_p95<=800ms' --llm-summary reports/chat/summary.json
"""

from locust import constant, task

from locust_llm import OpenAIChatUser
from locust_llm.workload import locust_options as wo

wo.register()  # --llm-dataset and the other workload options


class ChatUser(OpenAIChatUser):
    wait_time = constant(0)  # closed loop: the next request as soon as the last one ends
    _prompts = None

    @task
    def chat_once(self) -> None:
        if self.environment.parsed_options and self.environment.parsed_options.llm_dataset:
            if ChatUser._prompts is None:
                ChatUser._prompts = wo.prompt_source(self.environment)
            p = next(ChatUser._prompts)
            self.chat(p.chat_messages(), max_tokens=p.max_tokens, prompt_tokens=p.prompt_tokens)
            return
        # a synthetic prompt of --llm-prompt-tokens tokens, --llm-max-tokens out
        self.chat(self.llm.default_prompt())
