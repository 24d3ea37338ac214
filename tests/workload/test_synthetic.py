import random

import pytest

from locust_llm.workload.synthetic import WORDS, SharedPrefixes, SyntheticPrompts, fit_text
from locust_llm.workload.tokens import HFTokenizer, WordCounter, count_tokens, load_tokenizer


@pytest.mark.parametrize("n", [1, 7, 128, 2000])
def test_fit_text_hits_count_by_approximation(n):
    text, count = fit_text(random.Random(n), n)
    assert count == n and count_tokens(text) == n and len(text.split()) == n
    assert set(text.split()) <= set(WORDS)


def test_synthetic_prompts_lengths_and_reproducible():
    src = SyntheticPrompts("uniform:10:50", "normal:64:8", seed=3)
    ps = [src.next() for _ in range(200)]
    assert all(count_tokens(p.text) == p.prompt_tokens for p in ps)
    assert {p.prompt_tokens for p in ps} <= set(range(10, 51)) and len(
        {p.prompt_tokens for p in ps}
    ) > 20
    assert all(p.max_tokens >= 1 for p in ps)
    again = SyntheticPrompts("uniform:10:50", "normal:64:8", seed=3)
    assert [again.next() for _ in range(200)] == ps
    other = SyntheticPrompts("uniform:10:50", "normal:64:8", seed=4)
    assert other.next() != ps[0]
    assert len({p.text for p in ps}) == 200  # unique prompts: no accidental prefix sharing


def test_shared_prefixes():
    pre = SharedPrefixes(groups=3, tokens=32, seed=1)
    src = SyntheticPrompts(16, 8, seed=2, prefixes=pre)
    ps = [src.next() for _ in range(300)]
    assert {p.group for p in ps} == {0, 1, 2}
    for p in ps:
        assert p.text.startswith(pre.texts[p.group] + "\n")
        assert p.prompt_tokens == 48 == count_tokens(p.text)
    suffixes = {p.text.split("\n", 1)[1] for p in ps}
    assert len(suffixes) == 300
    assert len(set(pre.texts)) == 3
    assert SharedPrefixes(3, 32, seed=1).texts == pre.texts


def test_agrees_with_emulator_count():
    text = pytest.importorskip("locust_llm.emulator.text")
    src = SyntheticPrompts("uniform:1:300", seed=5, prefixes=SharedPrefixes(2, 40))
    for _ in range(50):
        p = src.next()
        assert text.completion_prompt(p.text)[1] == p.prompt_tokens
        overhead = text.CHAT_TOKENS_PER_MESSAGE + text.CHAT_TOKENS_REPLY_PRIMING
        assert text.chat_prompt(p.chat_messages())[1] == p.prompt_tokens + overhead


def test_count_tokens_rule():
    assert [count_tokens(t) for t in ("", "a", "abcd", "abcde", "the cat")] == [0, 1, 1, 2, 2]


def test_system_prompt_and_word_counter():
    p = SyntheticPrompts(5, seed=0, system="be brief").next()
    assert [m["role"] for m in p.messages] == ["system", "user"] and p.max_tokens is None
    wc = load_tokenizer(None)
    assert isinstance(wc, WordCounter) and not wc.exact
    assert wc.decode(wc.encode("a b a")) == "a b a"


def test_missing_tokenizer_file(tmp_path):
    pytest.importorskip("tokenizers")
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        load_tokenizer(tmp_path)


@pytest.fixture(scope="module")
def bpe_path(tmp_path_factory):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["[UNK]"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    rng = random.Random(0)
    corpus = [" ".join(rng.choices(WORDS, k=30)) for _ in range(200)]
    tok.train_from_iterator(corpus, trainer)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.mark.parametrize("n", [1, 5, 64, 333])
def test_fit_text_exact_with_tokenizer(bpe_path, n):
    tok = load_tokenizer(bpe_path)
    assert isinstance(tok, HFTokenizer) and tok.exact
    # a small BPE vocabulary splits words into several tokens: the word count would be wrong
    text, count = fit_text(random.Random(n), n, tok)
    assert count == n == tok.count(text)


def test_synthetic_with_tokenizer_dir(bpe_path):
    tok = load_tokenizer(bpe_path.parent)  # a directory holding tokenizer.json works too
    ps = [SyntheticPrompts("uniform:20:40", seed=1, tokenizer=tok).next() for _ in range(20)]
    assert all(tok.count(p.text) == p.prompt_tokens for p in ps)
    assert any(count_tokens(p.text) != p.prompt_tokens for p in ps)
