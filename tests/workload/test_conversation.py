from pathlib import Path

import pytest

from locust_llm.workload.conversation import Conversation, ConversationSource, Turn
from locust_llm.workload.datasets import load_dataset
from locust_llm.workload.distributions import parse_seconds

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "datasets"


def run(conv, reply=lambda p: f"reply to turn {p.source[-1]}"):
    sent = []
    while (p := conv.next_request()) is not None:
        sent.append(p)
        conv.add_reply(reply(p))
    return sent


def test_history_grows_with_replies():
    conv = Conversation([Turn("hello there", 5), Turn("and again", 7)])
    sent = run(conv)
    assert [p.max_tokens for p in sent] == [5, 7]
    assert sent[1].chat_messages() == [
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "reply to turn 1"},
        {"role": "user", "content": "and again"},
    ]
    assert sent[1].prompt_tokens == 3 + 4 + 3  # ceil(chars / 4) per message, as the emulator counts
    assert conv.done and conv.next_request() is None
    assert conv.messages[-1]["role"] == "assistant"


def test_order_is_enforced():
    conv = Conversation([Turn("a"), Turn("b")])
    conv.next_request()
    with pytest.raises(RuntimeError):
        conv.next_request()
    conv.add_reply("x")
    with pytest.raises(RuntimeError):
        conv.add_reply("y")


def test_from_sharegpt_dataset_turns_and_reply_lengths():
    src = ConversationSource(dataset=load_dataset(FIX / "sharegpt.json"), seed=0)
    seen = {}
    for _ in range(30):
        conv = src.next()
        seen[conv.turns[0].content] = conv
    france = seen["What is the capital of France?"]
    assert [t.content for t in france.turns] == ["What is the capital of France?", "And of Italy?"]
    assert [t.max_tokens for t in france.turns] == [8, 2]  # tokens of the reference replies
    terse = seen["Say hi"]
    assert terse.messages == [{"role": "system", "content": "You are terse."}]
    assert run(terse)[0].messages[0]["role"] == "system"


def test_synthetic_turns_and_think_time_reproducible():
    def make(seed):
        return ConversationSource(
            turns="uniform:2:5",
            prompt_tokens=16,
            max_tokens=8,
            think_time="uniform:0.5:1.5",
            seed=seed,
        )

    a, b = make(1), make(1)
    convs_a, convs_b = [a.next() for _ in range(20)], [b.next() for _ in range(20)]
    assert [c.turns for c in convs_a] == [c.turns for c in convs_b]
    assert {len(c.turns) for c in convs_a} <= {2, 3, 4, 5} and len(
        {len(c.turns) for c in convs_a}
    ) > 1
    assert all(t.max_tokens == 8 and len(t.content.split()) == 16 for c in convs_a for t in c.turns)
    thinks = [c.think_time() for c in convs_a]
    assert thinks == [c.think_time() for c in convs_b]
    assert all(0.5 <= t <= 1.5 for t in thinks) and len(set(thinks)) == 20
    assert make(2).next().turns != convs_a[0].turns


def test_max_turns_and_no_think_time():
    src = ConversationSource(turns=10, prompt_tokens=4, max_turns=3)
    conv = src.next()
    assert len(run(conv)) == 3 and conv.think_time() == 0.0
    assert parse_seconds(0).sample(conv.rng) == 0.0
