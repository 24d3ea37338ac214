import random
from collections import Counter

import pytest

from locust_llm.workload.mix import parse_model_mix


def test_weights_respected_and_seeded():
    mix = parse_model_mix("meta-llama/Llama-3-8B=2,qwen:7b=1,mistral")
    assert mix.models == ["meta-llama/Llama-3-8B", "qwen:7b", "mistral"]
    rng = random.Random(11)
    counts = Counter(mix.choose(rng) for _ in range(40000))
    assert abs(counts["meta-llama/Llama-3-8B"] / 40000 - 0.5) < 0.01
    assert abs(counts["qwen:7b"] / 40000 - 0.25) < 0.01
    r1, r2 = random.Random(3), random.Random(3)
    assert [mix.choose(r1) for _ in range(50)] == [mix.choose(r2) for _ in range(50)]
    assert abs(mix.probability("mistral") - 0.25) < 1e-12


def test_zero_weight_never_chosen():
    mix = parse_model_mix("a=1,b=0")
    rng = random.Random(0)
    assert {mix.choose(rng) for _ in range(2000)} == {"a"}


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("a=x", "not a number"),
        ("a,a", "twice"),
        ("a=0", "sum to 0"),
        ("a=-1", ">= 0"),
        ("a,,b", "empty"),
    ],
)
def test_errors(spec, needle):
    with pytest.raises(ValueError, match=needle):
        parse_model_mix(spec)
