"""A PNG's size and text chunks, with the file checked whole, without decoding its pixels.

PNG Info and imports need the metadata and a yes/no on "is this a whole image"; decoding the
pixels (Pillow's ``load``) costs 5-10x more than that at 512x512. ``scan`` walks the chunks once:

* the signature, then ``IHDR`` first: width x height over ``imagefile.MAX_PIXELS`` is refused before
  anything else is read (a "decompression bomb" costs nothing);
* every chunk's CRC (a flipped byte anywhere is "damaged"), up to ``IEND`` (a cut file is "truncated");
* the image data (``IDAT``) inflated and counted, not kept: it must end exactly at the size the
  header promises (rows x (1 + row bytes), Adam7 passes when interlaced), as a decoder would need;
* text chunks (``tEXt`` Latin-1, ``zTXt``, ``iTXt`` UTF-8, compressed or not) decoded, each at most
  ``MAX_TEXT_CHUNK`` bytes once decompressed (a 10 MB chunk is refused, and so is a zip bomb in one).

Anything wrong raises ``InvalidRequest`` naming the file (``name``) and what is wrong, in the same
words ``imagefile.open_image`` uses.
"""

from __future__ import annotations

import struct
import zlib

from studio.errors import InvalidRequest

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_TEXT_CHUNK = 4 * 1024 * 1024          # per text chunk, decompressed (Pillow reads compressed ones to 1 MB)
MAX_TEXT_TOTAL = 16 * 1024 * 1024
SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
FIELD = "image"


def _damaged(name: str, why: str = "") -> InvalidRequest:
    return InvalidRequest(FIELD, f"{name!r} is a truncated or damaged PNG{why}; save or download it again")


def raw_size(width: int, height: int, depth: int, colour: int, interlace: int) -> int:
    """Bytes of filtered scanlines the image data must inflate to."""
    bits = SAMPLES[colour] * depth

    def rows(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * bits + 7) // 8)

    if not interlace:
        return rows(width, height)
    return sum(rows((width - x + dx - 1) // dx if width > x else 0, (height - y + dy - 1) // dy if height > y else 0)
               for x, y, dx, dy in ADAM7)


def _text(kind: bytes, body: bytes, name: str) -> tuple[str, str] | None:
    """(keyword, text) of a tEXt/zTXt/iTXt chunk; None when it cannot be read as text."""
    keyword, sep, rest = body.partition(b"\0")
    if not sep or not keyword:
        return None
    key = keyword.decode("latin-1")
    compressed, encoding = kind == b"zTXt", "latin-1"
    if kind == b"zTXt":
        rest = rest[1:]
    elif kind == b"iTXt":
        if len(rest) < 2:
            return None
        compressed, rest = rest[0] == 1, rest[2:]
        _lang, _, rest = rest.partition(b"\0")
        _translated, _, rest = rest.partition(b"\0")
        encoding = "utf-8"
    if compressed:
        inflater = zlib.decompressobj()
        try:
            rest = inflater.decompress(rest, MAX_TEXT_CHUNK + 1)
        except zlib.error:
            return None
    if len(rest) > MAX_TEXT_CHUNK:
        raise InvalidRequest(FIELD, f"{name!r} has a text chunk {key!r} of {'over ' if compressed else ''}"
                                    f"{len(rest) / 1e6:.1f} MB, over the {MAX_TEXT_CHUNK // (1024 * 1024)} MB the "
                                    "studio reads (no tool writes that much metadata); not read")
    try:
        return key, rest.decode(encoding)
    except UnicodeDecodeError:
        return key, rest.decode("latin-1") if encoding == "utf-8" else None


def scan(data: bytes | memoryview, name: str, max_pixels: int) -> tuple[int, int, dict[str, str]]:
    """(width, height, text chunks) of the PNG ``data``, checked whole (see the module doc)."""
    view = memoryview(data)
    if bytes(view[:8]) != SIGNATURE:
        raise InvalidRequest(FIELD, f"{name!r} is not a PNG")
    pos, end, header = 8, len(view), None
    chunks: dict[str, str] = {}
    text_total, expected = 0, 0
    inflater = zlib.decompressobj()
    inflated, idat_done = 0, False
    while True:
        if pos + 8 > end:
            raise _damaged(name)
        length, kind = struct.unpack_from(">I4s", view, pos)
        body_at, crc_at = pos + 8, pos + 8 + length
        if length > 2**31 - 1 or crc_at + 4 > end:
            raise _damaged(name)
        if zlib.crc32(view[body_at - 4:crc_at]) != struct.unpack_from(">I", view, crc_at)[0]:
            raise _damaged(name, f" (chunk {kind.decode('latin-1', 'replace')!r} fails its checksum)")
        pos = crc_at + 4
        if header is None:
            if kind != b"IHDR" or length != 13:
                raise _damaged(name)
            width, height, depth, colour, _method, _filter, interlace = struct.unpack_from(">IIBBBBB", view, body_at)
            if colour not in SAMPLES or width == 0 or height == 0:
                raise _damaged(name)
            if width * height > max_pixels:
                raise InvalidRequest(FIELD, f"{name!r} is {width}x{height}, over the {max_pixels // 1_000_000}-"
                                            "megapixel limit (e.g. 8000x8000); scale it down first")
            header, expected = (width, height), raw_size(width, height, depth, colour, interlace)
        elif kind == b"IDAT":
            if idat_done:
                raise _damaged(name)
            try:
                while length:                         # inflate in steps: counted, never all in memory
                    part = inflater.decompress(view[body_at:crc_at], 1 << 20)
                    inflated += len(part)
                    body_at, length = crc_at - len(inflater.unconsumed_tail), len(inflater.unconsumed_tail)
                    if inflated > expected:
                        raise _damaged(name)
            except zlib.error:
                raise _damaged(name) from None
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            found = _text(kind, bytes(view[body_at:crc_at]), name)
            if found is not None:
                text_total += len(found[1])
                if text_total > MAX_TEXT_TOTAL:
                    raise InvalidRequest(FIELD, f"{name!r} carries over {MAX_TEXT_TOTAL // (1024 * 1024)} MB of "
                                                "text chunks; not read")
                chunks.setdefault(*found)
        elif kind == b"IEND":
            break
        if kind != b"IDAT" and inflated:
            idat_done = True
    try:
        inflated += len(inflater.flush())
    except zlib.error:
        raise _damaged(name) from None
    if not inflater.eof or inflater.unused_data or inflated != expected:
        raise _damaged(name)
    return header[0], header[1], chunks
