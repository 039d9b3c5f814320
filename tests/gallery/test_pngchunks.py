"""Reading a PNG's metadata without decoding it: every kind of PNG reads, every kind of damage is
named, oversized text is refused before it costs anything."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from studio.errors import InvalidRequest
from studio.gallery import pngchunks
from studio.gallery.imagefile import MAX_PIXELS
from studio.gallery.pnginfo import read_image_info


def encoded(mode: str = "RGB", size=(53, 37), text: dict[str, str] | None = None, **save) -> bytes:
    rng = np.random.default_rng(0)
    image = Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype("uint8")).convert(mode)
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value, zip=True) if key.startswith("z") else info.add_text(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info, **save)
    return buffer.getvalue()


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def with_chunk(data: bytes, extra: bytes, before: bytes = b"IEND") -> bytes:
    at = data.rindex(before) - 4
    return data[:at] + extra + data[at:]


@pytest.mark.parametrize("mode, save", [("RGB", {}), ("RGBA", {"interlace": 1}), ("P", {}), ("L", {}),
                                        ("LA", {}), ("1", {}), ("RGB", {"interlace": 1})])
def test_every_kind_of_png_reads_with_its_size_and_text(mode, save):
    data = encoded(mode, text={"parameters": "a cat\nSteps: 4", "zcomment": "ü compressed"}, **save)
    assert pngchunks.scan(data, "x.png", MAX_PIXELS) == (53, 37, {"parameters": "a cat\nSteps: 4",
                                                                    "zcomment": "ü compressed"})


def test_text_after_the_pixels_is_read_too():
    data = with_chunk(encoded(), chunk(b"tEXt", b"prompt\0{\"3\": {}}"))
    assert pngchunks.scan(data, "x.png", MAX_PIXELS)[2] == {"prompt": '{"3": {}}'}


@pytest.mark.parametrize("damage, why", [
    (lambda d: d[:-12], "truncated or damaged PNG"),                                  # no IEND
    (lambda d: d[:len(d) // 2], "truncated or damaged PNG"),                          # cut in the pixels
    (lambda d: d[:100] + bytes([d[100] ^ 1]) + d[101:], "fails its checksum"),         # one bit flipped
    (lambda d: with_chunk(d, chunk(b"IDAT", zlib.compress(b"\0" * 10))), "truncated or damaged PNG"),  # data after the end
])
def test_damage_is_named(damage, why):
    with pytest.raises(InvalidRequest, match=why):
        pngchunks.scan(damage(encoded()), "x.png", MAX_PIXELS)


def test_a_10_mb_text_chunk_and_a_text_zip_bomb_are_refused_by_name(tmp_path):
    big = with_chunk(encoded(), chunk(b"tEXt", b"parameters\0" + b"a" * 10_000_000))
    with pytest.raises(InvalidRequest, match=r"'big.png' has a text chunk 'parameters' of 10.0 MB, over the 4 MB"):
        pngchunks.scan(big, "big.png", MAX_PIXELS)
    bomb = with_chunk(encoded(), chunk(b"zTXt", b"prompt\0\0" + zlib.compress(b"{" * 200_000_000, 9)))
    assert len(bomb) < 300_000
    with pytest.raises(InvalidRequest, match=r"text chunk 'prompt' of over 4.2 MB"):
        pngchunks.scan(bomb, "bomb.png", MAX_PIXELS)
    (tmp_path / "big.png").write_bytes(big)
    with pytest.raises(InvalidRequest, match="text chunk 'parameters'"):
        read_image_info(tmp_path / "big.png")


def test_a_bomb_sized_header_is_refused_before_anything_else():
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 6, 0, 0, 0))
    with pytest.raises(InvalidRequest, match="100000x100000, over the 64-megapixel limit"):
        pngchunks.scan(pngchunks.SIGNATURE + header + b"\0" * 10, "bomb.png", MAX_PIXELS)
