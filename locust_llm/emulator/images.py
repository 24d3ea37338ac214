"""Prompt tokens of ``image_url`` parts, charged as vLLM charges a Qwen2-VL-style model.

The rule (Qwen2-VL's processor defaults, which vLLM applies): the image is resized to
multiples of 28 px (14-px patches merged 2x2), each side rounded to the nearest multiple
and at least 28, then scaled to keep the area within [56*56, 28*28*1280] pixels; it costs
``(height / 28) * (width / 28)`` image tokens plus 2 (``<|vision_start|>`` and
``<|vision_end|>``). A 512x512 image is 18x18 + 2 = 326 tokens, a 224x224 one 8x8 + 2 = 66.

Only ``data:image/png;base64,`` URLs are read (the emulator fetches nothing): the size is
taken from the PNG header, the first 24 bytes, so a large image costs no decoding.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct

__all__ = ["PATCH", "image_tokens", "parts_image_tokens", "resized"]

PATCH = 28
MIN_PIXELS = 56 * 56
MAX_PIXELS = 28 * 28 * 1280
EXTRA_TOKENS = 2  # <|vision_start|> ... <|vision_end|>
_PNG = b"\x89PNG\r\n\x1a\n"
_PREFIX = "data:image/png;base64,"


def resized(height: int, width: int) -> tuple[int, int]:
    """Qwen2-VL's ``smart_resize``: the (height, width) the model sees."""
    h = max(PATCH, round(height / PATCH) * PATCH)
    w = max(PATCH, round(width / PATCH) * PATCH)
    if h * w > MAX_PIXELS:
        beta = math.sqrt(height * width / MAX_PIXELS)
        h = max(PATCH, math.floor(height / beta / PATCH) * PATCH)
        w = max(PATCH, math.floor(width / beta / PATCH) * PATCH)
    elif h * w < MIN_PIXELS:
        beta = math.sqrt(MIN_PIXELS / (height * width))
        h = math.ceil(height * beta / PATCH) * PATCH
        w = math.ceil(width * beta / PATCH) * PATCH
    return h, w


def image_tokens(url: str) -> int:
    """Tokens of one image given as a PNG data URL; ValueError for anything else."""
    if not isinstance(url, str) or not url.startswith(_PREFIX):
        raise ValueError(
            "image_url: the emulator reads data:image/png;base64, URLs only (it fetches nothing)"
        )
    try:
        head = base64.b64decode(url[len(_PREFIX) : len(_PREFIX) + 32], validate=True)
    except (binascii.Error, ValueError):
        head = b""
    if len(head) < 24 or head[:8] != _PNG or head[12:16] != b"IHDR":
        raise ValueError("image_url: the data is not a PNG image")
    width, height = struct.unpack(">II", head[16:24])
    if not width or not height:
        raise ValueError("image_url: the PNG has a zero side")
    h, w = resized(height, width)
    return (h // PATCH) * (w // PATCH) + EXTRA_TOKENS


def parts_image_tokens(content: object) -> int:
    """Image tokens of one message's content (0 for text); ValueError on a bad image part."""
    if not isinstance(content, list):
        return 0
    n = 0
    for p in content:
        if isinstance(p, dict) and p.get("type") == "image_url":
            ref = p.get("image_url")
            n += image_tokens(ref.get("url") if isinstance(ref, dict) else ref)
    return n
