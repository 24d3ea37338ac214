import random
from pathlib import Path

import pytest

from locust_llm.workload.datasets import DatasetError, load_dataset

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "datasets"


def test_sharegpt():
    ds = load_dataset(FIX / "sharegpt.json")
    assert len(ds) == 3 and ds.skipped == 1  # the empty conversation is skipped, counted
    first = ds.entries[0]
    assert first.line == 2 and first.user_turns == 2
    p = first.first_prompt()
    assert p.chat_messages() == [{"role": "user", "content": "What is the capital of France?"}]
    assert p.prompt_tokens == 8 and p.max_tokens == 8  # ceil(chars / 4) of prompt and first reply
    sys_p = ds.entries[1].first_prompt()
    assert [m["role"] for m in sys_p.messages] == ["system", "user"]
    assert ds.entries[2].line == 14


def test_sharegpt_bad_role_names_item_and_line():
    with pytest.raises(DatasetError) as exc:
        load_dataset(FIX / "sharegpt_bad_role.json")
    e = exc.value
    assert (e.line, e.item) == (6, 1)
    assert "sharegpt_bad_role.json:6 (item 1)" in str(e) and "'robot'" in str(e)


def test_sharegpt_bad_syntax_names_line():
    with pytest.raises(DatasetError) as exc:
        load_dataset(FIX / "sharegpt_bad_syntax.json")
    assert exc.value.line == 4 and exc.value.item == 1  # item 1 lacks its closing brace
    assert "invalid JSON" in str(exc.value)


def test_jsonl_prompts():
    ds = load_dataset(FIX / "prompts.jsonl")
    assert [e.line for e in ds.entries] == [1, 2, 4]  # blank line 3 skipped
    ps = [e.first_prompt() for e in ds.entries]
    assert ps[0].text == "Write a haiku about load testing." and ps[0].max_tokens == 32
    assert ps[1].max_tokens is None and ps[2].max_tokens == 8


def test_jsonl_messages():
    ds = load_dataset(FIX / "messages.jsonl")
    assert [m["role"] for m in ds.entries[0].messages] == ["system", "user"]
    p = ds.entries[1].first_prompt()
    assert p.text == "Hello" and p.max_tokens == 4  # "Hi there friend": 15 chars
    assert ds.entries[1].user_turns == 2


@pytest.mark.parametrize(
    "name,line,needle",
    [
        ("prompts_bad.jsonl", 3, "invalid JSON"),
        ("messages_bad.jsonl", 2, "messages[0] must be an object with 'role' and 'content'"),
        ("bad_utf8.txt", 2, "not valid UTF-8"),
    ],
)
def test_broken_files_name_the_line(name, line, needle):
    with pytest.raises(DatasetError) as exc:
        load_dataset(FIX / name)
    assert exc.value.line == line
    assert f"{name}:{line}" in str(exc.value) and needle in str(exc.value)


def test_text_lines():
    ds = load_dataset(FIX / "prompts.txt")
    assert [e.first_prompt().text for e in ds.entries] == [
        "First prompt line",
        "Second prompt line",
        "Third",
    ]
    assert [e.line for e in ds.entries] == [1, 3, 4]


def test_explicit_format_and_errors(tmp_path):
    p = tmp_path / "data.txt"
    p.write_text('{"prompt": "x"}\n')
    assert load_dataset(p, format="jsonl").entries[0].first_prompt().text == "x"
    assert load_dataset(p).entries[0].first_prompt().text == '{"prompt": "x"}'
    with pytest.raises(DatasetError, match="unknown dataset format"):
        load_dataset(p, format="parquet")
    with pytest.raises(DatasetError, match="only local files"):
        load_dataset("https://example.com/x.json")
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset(tmp_path / "missing.json")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DatasetError, match="no usable entries"):
        load_dataset(tmp_path / "empty.jsonl")
    (tmp_path / "obj.json").write_text('{"prompt": "a"}\n[1]\n')
    with pytest.raises(DatasetError) as exc:
        load_dataset(tmp_path / "obj.json")  # .json not starting with '[' is read as JSONL
    assert exc.value.line == 2 and "expected an object" in str(exc.value)
    (tmp_path / "tail.json").write_text('[{"prompt": "a"}]\nx')
    with pytest.raises(DatasetError, match="after the JSON array"):
        load_dataset(tmp_path / "tail.json")
    (tmp_path / "open.json").write_text('[{"prompt": "a"}')
    with pytest.raises(DatasetError, match="unterminated"):
        load_dataset(tmp_path / "open.json")
    (tmp_path / "mt.jsonl").write_text('{"prompt": "a", "max_tokens": 0}\n')
    with pytest.raises(DatasetError, match="positive integer"):
        load_dataset(tmp_path / "mt.jsonl")


def test_prompts_seeded_and_sliced():
    ds = load_dataset(FIX / "prompts.txt")
    a = [p.text for _, p in zip(range(6), ds.prompts(seed=1))]
    assert a == [p.text for _, p in zip(range(6), ds.prompts(seed=1))]
    assert sorted(a[:3]) == sorted(["First prompt line", "Second prompt line", "Third"])
    w0 = [p.text for _, p in zip(range(3), ds.prompts(seed=1, offset=0, stride=2))]
    w1 = [p.text for _, p in zip(range(3), ds.prompts(seed=1, offset=1, stride=2))]
    assert w0 == a[0:6:2] and w1 == a[1:6:2]
    assert ds.sample(random.Random(0)) in ds.entries
