"""Generated images in chat requests: valid seeded PNGs, records and summary totals, and the
emulator's prompt-token charge per image."""

from __future__ import annotations

import base64
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from locust.env import Environment
from locust.event import Events

from locust_llm import OpenAIChatUser
from locust_llm.emulator.images import image_tokens, resized
from locust_llm.workload.images import CACHE_BYTES, SIDE_STEP, attach_images, image_plan, make_png
from tests.emulator.conftest import Emulator

ROOT = Path(__file__).resolve().parents[2]


def png_pixels(png: bytes) -> tuple[int, int, bytes]:
    """An independent reader: chunk CRCs, IHDR, and the filtered rows inflated."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", None
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", png[pos + 8 + n : pos + 12 + n])
        assert zlib.crc32(kind + data) == crc, kind
        if kind == b"IHDR":
            size = struct.unpack(">II", data[:8])
            assert data[8:] == bytes([8, 2, 0, 0, 0])  # 8-bit RGB, no interlace
        elif kind == b"IDAT":
            idat += data
        pos += 12 + n
    w, h = size
    raw = zlib.decompress(idat)
    assert len(raw) == h * (1 + 3 * w)
    return w, h, raw


def test_pngs_are_valid_seeded_and_sized():
    w, h, raw = png_pixels(make_png(100, 37, seed=1))
    assert (w, h) == (100, 37)
    assert make_png(100, 37, 1) == make_png(100, 37, 1) != make_png(100, 37, 2)
    assert len(set(raw)) > 16  # not a blank image


def test_pngs_open_in_pillow():
    py = ROOT / ".venv-vllm" / "bin" / "python"
    if not py.exists():
        pytest.skip("no .venv-vllm with Pillow here")
    png = make_png(64, 48, 3)
    code = "import io,sys,PIL.Image as I; im=I.open(io.BytesIO(sys.stdin.buffer.read())); im.load(); print(im.size, im.mode)"
    out = subprocess.run([str(py), "-c", code], input=png, capture_output=True, timeout=60)
    assert out.stdout.decode().strip() == "(64, 48) RGB", out.stderr[-500:]


def test_plan_is_reproducible_cached_and_bounded():
    a = image_plan("uniform:1:3", "uniform:64:96", seed=5)
    b = image_plan("uniform:1:3", "uniform:64:96", seed=5)
    drawn = [a.next() for _ in range(50)]
    assert drawn == [b.next() for _ in range(50)]
    counts = [len(x) for x in drawn]
    assert set(counts) == {1, 2, 3}
    assert sum(len(u) for u, _ in a._cache.values()) <= CACHE_BYTES
    url, nbytes = drawn[0][0]
    png = base64.b64decode(url.split(",", 1)[1])
    side = png_pixels(png)[0]
    assert len(png) == nbytes and side in (56, 84, 112) and side % SIDE_STEP == 0
    # drawn once per size and variant: 50 requests of one size reuse at most VARIANTS images
    one = image_plan("1", "uniform:500:510", seed=1)  # all on the 504 px grid step
    urls = {id(one.next()[0][0]) for _ in range(50)}
    assert len(urls) <= 4
    assert image_plan(None, "512").next() == []  # no default images without --llm-images
    assert len(image_plan(None, "32").next(2)) == 2  # chat(images=2) still gets two


def test_attach_images_adds_parts_to_the_last_user_message_without_touching_the_input():
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "describe"}]
    out = attach_images(msgs, [("data:image/png;base64,AAAA", 3)])
    assert msgs[1]["content"] == "describe"
    assert out[1]["content"] == [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]


def test_vision_charge_follows_qwen2_vl_resizing():
    assert resized(512, 512) == (504, 504)
    assert resized(10, 10) == (56, 56)  # raised to the minimum area
    h, w = resized(4000, 3000)
    assert h * w <= 28 * 28 * 1280 and h % 28 == w % 28 == 0
    url = "data:image/png;base64," + base64.b64encode(make_png(512, 512, 0)).decode()
    assert image_tokens(url) == 18 * 18 + 2
    with pytest.raises(ValueError, match="data:image/png"):
        image_tokens("https://example.com/cat.png")
    with pytest.raises(ValueError, match="not a PNG"):
        image_tokens("data:image/png;base64," + base64.b64encode(b"GIF89a" * 8).decode())


@pytest.fixture(scope="module")
def emu():
    e = Emulator(["--emu-ttft-ms", "5", "--emu-itl-ms", "1"])
    yield e
    e.kill()


def chat_user(url: str, **opts):
    env = Environment(user_classes=[OpenAIChatUser], events=Events(), host=url)
    env.parsed_options = type("O", (), {"llm_timestamps": "user", **opts})()
    env.create_local_runner()
    u = type("U", (OpenAIChatUser,), {"abstract": False, "host": url})(env)
    u.llm.model = "locust-llm/emulator"
    return env, u


def test_images_reach_the_emulator_and_are_recorded(emu):
    env, u = chat_user(emu.url, llm_images="2", llm_image_size="224")
    plain = u.chat("what is in the picture?", max_tokens=4, images=0)
    r = u.chat("what is in the picture?", max_tokens=4)
    assert plain.ok and r.ok, (plain.error, r.error)
    assert plain.images == 0 and r.images == 2 and r.image_bytes > 0
    # 224x224 is 8x8 merged patches + 2 tokens per image, in usage.prompt_tokens
    assert r.prompt_tokens - plain.prompt_tokens == 2 * (8 * 8 + 2)
    rec = r.to_record()
    assert rec["images"] == 2 and rec["image_bytes"] == r.image_bytes
    s = env.llm.summary()
    assert s["total_images"] == 2 and s["total_image_bytes"] == r.image_bytes
    big = u.chat("what is in the picture?", max_tokens=4, images=1)
    assert big.prompt_tokens - plain.prompt_tokens == 66


def test_a_non_png_image_is_a_400_from_the_emulator(emu):
    env, u = chat_user(emu.url)
    msgs = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.jpg"}}],
        }
    ]
    r = u.chat(msgs, max_tokens=2)
    assert r.status == 400 and "data:image/png" in r.error
