"""vLLM's automatic prefix cache, block by block, as its scheduler sees it (pure: no clock, no I/O).

A prompt is split into full blocks of ``block_size`` tokens; block i is keyed by a hash chained
over its parent's key and its own tokens, so two prompts share block i's key exactly when they
share their first ``(i + 1) * block_size`` tokens (vLLM hashes ``(parent hash, block token
ids)`` the same way). A partial last block is never cached.

A lookup hits only whole leading blocks, and never the whole prompt: vLLM always computes at
least the last prompt token (it yields the logits of the first output token), so the hit is
at most ``(n - 1) // block_size`` blocks, which for a prompt that is a whole number of blocks
recomputes the last block. A request references the blocks it uses while it runs; blocks no
running request references stay cached in free KV memory and are evicted least recently used
first when the KV space is needed (vLLM's free block queue). A finished request's blocks are
freed tail first, so its last blocks are evicted before its first (they are shared less).

Block size: 16 tokens by default, vLLM's ``CacheConfig.DEFAULT_BLOCK_SIZE``, which GPU attention
backends keep. vLLM's CPU platform picks 128 when ``--block-size`` is not given; the emulator
imitates a GPU server by default, so it keeps 16 (pass ``--block-size 128`` to imitate a CPU
vLLM, as tests against the real CPU build do).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence

__all__ = ["PrefixCache", "block_hashes", "created_tokens", "max_hit_blocks"]


def block_hashes(tokens: Sequence[Hashable], block_size: int, width: int = 1) -> tuple[int, ...]:
    """Chained keys of the prompt's full blocks: key i covers tokens ``[0, (i+1)*block_size)``.

    ``width``: items of ``tokens`` per token (a string of fixed-width cells hashes a block as
    one slice)."""
    step = block_size * width
    chunk = (lambda x: x) if isinstance(tokens, str) else tuple
    out = []
    h = 0
    for i in range(0, len(tokens) - step + 1, step):
        h = hash((h, chunk(tokens[i : i + step])))
        out.append(h)
    return tuple(out)


def max_hit_blocks(prompt_tokens: int, block_size: int) -> int:
    """The most leading blocks a lookup may hit: the last prompt token is always computed."""
    return max(0, prompt_tokens - 1) // block_size


def created_tokens(prompt_tokens: int, cached: int, block_size: int) -> int:
    """Prompt tokens this request wrote to the cache: its full blocks beyond the hit.

    vLLM's ``created_cache_tokens`` (``PrefillStats.finalize``): tokens covered by the request's
    hashed blocks once its prefill ends, less those it found cached.
    """
    return max(0, (prompt_tokens // block_size) * block_size - cached)


class PrefixCache:
    """Block keys with reference counts; unreferenced ones in LRU order, evicted oldest first.

    ``num_blocks`` is the KV capacity in blocks: referenced and free cached blocks together
    never exceed it, and :meth:`trim` shrinks the free ones to the room the engine leaves.
    """

    def __init__(self, block_size: int, num_blocks: int) -> None:
        if block_size < 1:
            raise ValueError(f"block size must be at least 1 token, got {block_size}")
        self.block_size = block_size
        self.num_blocks = max(0, num_blocks)
        self._refs: dict[int, int] = {}  # referenced by running requests: key -> count
        self._free: OrderedDict[int, None] = OrderedDict()  # unreferenced, LRU first
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._refs) + len(self._free)

    def __contains__(self, key: object) -> bool:
        return key in self._refs or key in self._free

    @property
    def free_blocks(self) -> int:
        """Cached blocks no running request references (evictable)."""
        return len(self._free)

    def match(self, keys: Sequence[int], prompt_tokens: int) -> int:
        """Cached tokens for a prompt with these block keys (no side effect)."""
        n = 0
        for key in keys[: max_hit_blocks(prompt_tokens, self.block_size)]:
            if key not in self._refs and key not in self._free:
                break
            n += 1
        return n * self.block_size

    def acquire(self, keys: Sequence[int]) -> tuple[int, ...]:
        """Reference ``keys`` (all cached: the hit :meth:`match` found); returns them as held."""
        for key in keys:
            if key in self._free:
                del self._free[key]
                self._refs[key] = 1
            else:
                self._refs[key] += 1
        return tuple(keys)

    def insert(self, keys: Sequence[int], held: Sequence[int]) -> tuple[int, ...]:
        """A request's prefill ended: its full blocks become cached, referenced by it.

        ``held`` are the keys it already references (its hit); returns all it holds now.
        Blocks that no longer fit in ``num_blocks`` (after evicting free ones) are not cached.
        """
        out = list(held)
        for key in keys[len(held) :]:
            if key in self._refs:
                self._refs[key] += 1
            elif key in self._free:
                del self._free[key]
                self._refs[key] = 1
            else:
                if len(self) >= self.num_blocks:
                    self._evict(len(self) - self.num_blocks + 1)
                if len(self) >= self.num_blocks:
                    break
                self._refs[key] = 1
            out.append(key)
        return tuple(out)

    def release(self, held: Sequence[int]) -> None:
        """A request ended or was preempted: drop its references, tail block first."""
        for key in reversed(held):
            n = self._refs.get(key)
            if n is None:
                continue
            if n > 1:
                self._refs[key] = n - 1
            else:
                del self._refs[key]
                self._free[key] = None

    def trim(self, used_blocks: int) -> None:
        """Evict free blocks until they fit in the KV blocks running requests leave unused."""
        room = max(0, self.num_blocks - max(used_blocks, len(self._refs)))
        if len(self._free) > room:
            self._evict(len(self._free) - room)

    def _evict(self, n: int) -> None:
        for _ in range(min(n, len(self._free))):
            self._free.popitem(last=False)
            self.evictions += 1
