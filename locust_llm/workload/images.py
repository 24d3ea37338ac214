"""Generated images for chat requests: seeded PNGs sent as ``image_url`` data URLs (pure).

Vision models spend prefill on every image (hundreds to thousands of tokens each) and the
request body grows by the image's base64 text, so a multimodal load test needs images of
chosen counts and sizes, yet the client must not spend its CPU drawing them: each PNG is
made once (8x8-pixel blocks of seeded colours, zlib level 1: about 5 ms for 512x512) and
:data:`VARIANTS` different ones are kept per size, up to :data:`CACHE_BYTES` of data URLs.
Drawn sides are rounded to a multiple of :data:`SIDE_STEP` (28 px, the patch grid a vision
model resizes to anyway), so a size distribution has few distinct sizes and the cache holds
them all; only wide distributions of large images outgrow it and regenerate. The same seed
sends the same images in the same order.
"""

from __future__ import annotations

import base64
import math
import random
import struct
import zlib
from typing import Any

from locust_llm.workload.distributions import Distribution, SpecError, parse_distribution

__all__ = [
    "CACHE_BYTES",
    "MAX_SIDE",
    "SIDE_STEP",
    "VARIANTS",
    "Image",
    "ImagePlan",
    "attach_images",
    "image_plan",
    "make_png",
]

VARIANTS = 4  # different images per size: caches keyed on content see some variety
CACHE_BYTES = 64 << 20  # data-URL text kept, oldest dropped first
SIDE_STEP = 28
MAX_SIDE = 4088  # drawn sides are clipped here (a multiple of 28): ~50 MB raw RGB
_BLOCK = 8
_SIG = b"\x89PNG\r\n\x1a\n"

#: (data URL, PNG bytes) of one image
Image = tuple[str, int]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png(width: int, height: int, seed: int) -> bytes:
    """An RGB PNG of ``width`` x ``height``: blocks of colours drawn from ``seed``."""
    rng = random.Random(seed)
    bw = math.ceil(width / _BLOCK)
    rows = []
    for by in range(math.ceil(height / _BLOCK)):
        colours = rng.randbytes(bw * 3)
        line = b"".join(colours[i : i + 3] * _BLOCK for i in range(0, bw * 3, 3))[: width * 3]
        rows.append((b"\x00" + line) * min(_BLOCK, height - by * _BLOCK))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"".join(rows), 1)
    return _SIG + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


class ImagePlan:
    """Draws each request's images: a count, then a side per image, from seeded streams."""

    def __init__(self, count: Distribution | None, side: Distribution, seed: int = 0) -> None:
        self.count = count
        self.side = side
        self.seed = seed
        self._rng = random.Random(f"images:{seed}")
        self._cache: dict[tuple[int, int], Image] = {}
        self._cached_bytes = 0

    def next(self, count: int | None = None) -> list[Image]:
        """The images of one request: ``count`` of them, or as many as the count draws."""
        rng = self._rng
        if count is None:
            count = round(self.count.sample(rng)) if self.count is not None else 0
        return [self._image(_side(self.side.sample(rng)), rng) for _ in range(count)]

    def _image(self, side: int, rng: random.Random) -> Image:
        key = (side, rng.randrange(VARIANTS))
        img = self._cache.get(key)
        if img is None:
            png = make_png(side, side, (self.seed * 1_000_003 + side) * VARIANTS + key[1])
            url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            while self._cache and self._cached_bytes + len(url) > CACHE_BYTES:
                old = self._cache.pop(next(iter(self._cache)))  # oldest first
                self._cached_bytes -= len(old[0])
            img = self._cache[key] = (url, len(png))
            self._cached_bytes += len(url)
        return img


def _side(x: float) -> int:
    """A drawn side on the 28-px grid, from 28 to MAX_SIDE."""
    return min(max(SIDE_STEP, round(x / SIDE_STEP) * SIDE_STEP), MAX_SIDE)


def image_plan(count: str | None, side: str | None, seed: int = 0) -> ImagePlan:
    """The plan for ``--llm-images``/``--llm-image-size`` (without ``--llm-images`` no image
    is sent unless a task asks with ``chat(images=n)``); SpecError on bad values."""
    try:
        sides = parse_distribution(side or "512", integer=True)
    except SpecError as e:
        raise SpecError(f"--llm-image-size {e}") from None
    if not count or str(count).strip() == "0":
        return ImagePlan(None, sides, seed)
    try:
        counts = parse_distribution(count, integer=False)
    except SpecError as e:
        raise SpecError(f"--llm-images {e} (a count of images per request)") from None
    return ImagePlan(counts, sides, seed)


def attach_images(messages: list[dict[str, Any]], images: list[Image]) -> list[dict[str, Any]]:
    """``messages`` with ``images`` as ``image_url`` parts after the last user message's
    text (a copy: the caller's list and dicts are not changed)."""
    parts = [{"type": "image_url", "image_url": {"url": url}} for url, _ in images]
    out = list(messages)
    for i in range(len(out) - 1, -1, -1):
        m = out[i]
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                new = [*content, *parts]
            else:
                new = [{"type": "text", "text": content or ""}, *parts]
            out[i] = {**m, "content": new}
            return out
    return [*out, {"role": "user", "content": parts}]
