"""Locustfile for the web UI tests: chat users plus one user whose requests fail with markup.

``EvilUser`` asks for a model whose name is a script tag; the emulator answers 404
"The model `<script>...` does not exist.", so the error message shown in the tab holds markup
coming from a server — the escaping test needs exactly that.
"""

from locust import between, constant, task

from locust_llm import OpenAIChatUser

EVIL_MODEL = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


class ChatUser(OpenAIChatUser):
    weight = 3
    wait_time = between(0, 0)

    @task
    def ask(self) -> None:
        self.chat(self.llm.default_prompt())


class EvilUser(OpenAIChatUser):
    weight = 1
    fixed_count = 1
    wait_time = constant(1)

    def evil(self) -> None:
        self.chat("hello", model=EVIL_MODEL)

    tasks = [evil]
