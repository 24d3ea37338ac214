"""The emulator's block prefix cache, pure: hash chain, the n-1 rule, the bound, LRU eviction."""

from __future__ import annotations

import pytest

from locust_llm.emulator import text as textmod
from locust_llm.emulator.prefix_cache import (
    PrefixCache,
    block_hashes,
    created_tokens,
    max_hit_blocks,
)


def test_hash_chain_keys_whole_prefixes():
    a = block_hashes(list(range(50)), 16)
    assert len(a) == 3  # 48 tokens in full blocks, the partial 4th is never keyed
    b = block_hashes(list(range(32)) + [999] * 16, 16)
    assert b[:2] == a[:2] and b[2] != a[2]
    # the same block content after a different first block is a different key: it is a chain
    c = block_hashes([7] * 16 + list(range(16, 48)), 16)
    assert c[0] != a[0] and c[1] != a[1] and c[2] != a[2]
    assert block_hashes(list(range(15)), 16) == ()


@pytest.mark.parametrize(
    ("n", "hit"), [(1, 0), (16, 0), (17, 16), (32, 16), (33, 32), (50, 48), (160, 144)]
)
def test_hit_is_whole_blocks_below_the_last_token(n, hit):
    bs = 16
    cache = PrefixCache(bs, 1000)
    keys = block_hashes(list(range(n)), bs)
    cache.release(cache.insert(keys, ()))
    assert cache.match(keys, n) == hit == max_hit_blocks(n, bs) * bs == (n - 1) // bs * bs
    assert created_tokens(n, hit, bs) == n // bs * bs - hit


def test_hit_stops_at_the_first_missing_block():
    cache = PrefixCache(16, 1000)
    keys = block_hashes(list(range(80)), 16)
    cache.release(cache.insert(keys[:2], ()))
    assert cache.match(keys, 80) == 32
    other = block_hashes([1] * 80, 16)
    assert cache.match(other, 80) == 0


def test_bound_and_lru_eviction_of_unreferenced_blocks():
    cache = PrefixCache(4, 6)  # 6 blocks of 4 tokens
    a = block_hashes(list(range(12)), 4)  # 3 blocks
    b = block_hashes(list(range(100, 112)), 4)
    c = block_hashes(list(range(200, 212)), 4)
    held_a = cache.insert(a, ())
    cache.release(cache.insert(b, ()))
    assert len(cache) == 6 and cache.free_blocks == 3
    cache.match(a, 13)  # a lookup alone refreshes nothing
    held_c = cache.insert(c, ())  # needs 3 blocks: b's (free, least recent) go, a's are held
    assert len(cache) == 6 and cache.evictions == 3
    assert cache.match(b, 13) == 0 and cache.match(a, 13) == 12 and cache.match(c, 13) == 12
    # held blocks are never evicted: nothing more fits while a and c run
    d = block_hashes(list(range(300, 312)), 4)
    assert cache.insert(d, ()) == ()
    assert cache.match(a, 13) == 12 and cache.match(c, 13) == 12
    cache.release(held_a)
    cache.release(held_c)
    # a freed before c (least recent), each tail block first: c's first block is the last left
    cache.trim(used_blocks=5)
    assert cache.free_blocks == 1 and cache.match(c, 13) == 4 and cache.match(a, 13) == 0
    cache.trim(used_blocks=0)
    assert cache.free_blocks == 1  # trim only ever evicts


def test_acquired_blocks_survive_trim_and_are_refreshed():
    cache = PrefixCache(4, 4)
    a = block_hashes(list(range(8)), 4)
    b = block_hashes(list(range(50, 58)), 4)
    cache.release(cache.insert(a, ()))
    cache.release(cache.insert(b, ()))
    held = cache.acquire(a[: cache.match(a, 9) // 4])  # a hit references a's blocks
    cache.trim(used_blocks=2)  # room for 2 free blocks: b's stay, a's are held
    assert cache.match(a, 9) == 8 and cache.match(b, 9) == 8
    cache.release(held)  # a is now the most recently used
    cache.trim(used_blocks=2)
    assert cache.match(a, 9) == 8 and cache.match(b, 9) == 0


def test_two_requests_share_a_block():
    cache = PrefixCache(4, 10)
    a = block_hashes(list(range(8)), 4)
    h1 = cache.insert(a, ())
    h2 = cache.acquire(a[:2])
    cache.release(h1)
    cache.trim(used_blocks=10)  # no room for free blocks at all
    assert cache.match(a, 9) == 8  # still referenced by the second
    cache.release(h2)
    cache.trim(used_blocks=10)
    assert len(cache) == 0


def _keys(units, bs=16):
    return block_hashes(units, bs, textmod.unit_width(units))


def test_prompt_units_count_as_the_prompt_does():
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x" * 37}]
    units = textmod.chat_units(msgs)
    assert len(units) % textmod.unit_width(units) == 0
    assert len(units) // textmod.unit_width(units) == textmod.chat_prompt(msgs)[1]
    for p in ("hello world", ["hello"], [1, 2, 3], [[4, 5]], [9]):
        u = textmod.completion_units(p)
        assert len(u) // textmod.unit_width(u) == textmod.completion_prompt(p)[1]
    # the role is part of the prefix: the same text from another role is another block
    u = textmod.chat_units([{"role": "user", "content": "a" * 64}])
    s = textmod.chat_units([{"role": "system", "content": "a" * 64}])
    assert _keys(u)[0] != _keys(s)[0]
    # a block of text cells keys the same tokens whatever follows them
    one = _keys(textmod.completion_units("abcd" * 160))
    two = _keys(textmod.completion_units("abcd" * 160 + "tail of another prompt"))
    assert len(one) == 10 and two[:10] == one
    # a message boundary is not text: "ab" + "cd" in two messages is not "abcd" in one
    split = [{"role": "user", "content": "ab"}, {"role": "user", "content": "cd" + "x" * 60}]
    joined = [{"role": "user", "content": "abcd" + "x" * 58}]
    assert _keys(textmod.chat_units(split))[0] != _keys(textmod.chat_units(joined))[0]


def test_block_size_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        PrefixCache(0, 10)
