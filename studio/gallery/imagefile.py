"""Opening an image a user hands in (PNG Info, Import, a stray file under outputs).

Every way such a file can be wrong becomes one ``InvalidRequest`` naming the file by its own
name (never a server path: an upload lies at ``/tmp/gradio/<hash>/<name>``) and saying what is
wrong: an empty file, not an image, a truncated or damaged one, or one with too many pixels.

``MAX_PIXELS`` is the studio's cap (64 megapixels, e.g. 8000x8000; the studio itself makes at
most 4096x4096). The size is read from the header and checked *before* any pixel is decoded, so
a 20000x20000 file (a "decompression bomb": a few bytes on disk, 1.2 GB once decoded) is refused
in microseconds. The file is opened through its format's plugin class rather than
``Image.open``: Pillow's own bomb check there raises for some sizes and only prints a warning for
others, and its message carries no width and height; ours is explicit and the same for all.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from studio.errors import InvalidRequest

MAX_PIXELS = 64_000_000
MAX_FILE_BYTES = 2**30          # 1 GiB: a 64-megapixel PNG is at most ~260 MB
FORMATS_TEXT = "PNG, JPEG or WebP"
FIELD = "image"

# Pillow raises these for bytes that are not what the header promised (SyntaxError is its
# "broken PNG"; struct/zlib errors come from cut chunks and streams).
_DAMAGED = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


def _format_of(head: bytes) -> tuple[str, type[Image.Image]] | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG", PngImagePlugin.PngImageFile
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG", JpegImagePlugin.JpegImageFile
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP", WebPImagePlugin.WebPImageFile
    return None


def read_bytes(path: str | Path, name: str | None = None, field: str = FIELD) -> bytes:
    """The whole file at ``path`` (at most ``MAX_FILE_BYTES``), or ``InvalidRequest`` naming it: gone,
    unreadable, empty, too big, or not a PNG, JPEG or WebP image."""
    path = Path(path)
    name = name or path.name
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise InvalidRequest(field, f"{name!r} is {size / 1e9:.1f} GB, over the "
                                            f"{MAX_FILE_BYTES // 2**30} GB an image may be")
            _kind_of(head, name, field)
            data = head + handle.read()
    except FileNotFoundError:
        raise InvalidRequest(field, f"{name!r} is not there any more; choose the file again") from None
    except IsADirectoryError:
        raise InvalidRequest(field, f"{name!r} is a folder, not an image") from None
    except OSError as err:
        raise InvalidRequest(field, f"{name!r} cannot be read ({err.strerror or type(err).__name__})") from None
    return data


def _kind_of(head: bytes, name: str, field: str) -> tuple[str, type[Image.Image]]:
    if not head:
        raise InvalidRequest(field, f"{name!r} is an empty file (0 bytes); choose a {FORMATS_TEXT} image")
    kind = _format_of(head)
    if kind is None:
        raise InvalidRequest(field, f"{name!r} is not an image (not {FORMATS_TEXT} data); choose a "
                                    f"{FORMATS_TEXT} image")
    return kind


def is_png(data: bytes) -> bool:
    return data.startswith(b"\x89PNG\r\n\x1a\n")


@contextmanager
def open_image(path: str | Path | bytes, name: str | None = None, field: str = FIELD) -> Iterator[Image.Image]:
    """The image at ``path`` (or in the bytes ``path``), its pixels loaded (so a cut-off file shows
    here, not later).

    ``name``: what to call the file in messages (default: its base name, which for a Gradio
    upload is the name the user gave it). Raises ``InvalidRequest`` for anything but a whole
    PNG, JPEG or WebP image of at most ``MAX_PIXELS`` pixels; ``field`` is the request field or
    widget it names (``init_image``, ``controls``...).
    """
    if isinstance(path, bytes):
        name, head, source = name or "image", path[:16], io.BytesIO(path)
    else:
        path = Path(path)
        name = name or path.name
        try:
            with open(path, "rb") as handle:
                head = handle.read(16)
        except FileNotFoundError:
            raise InvalidRequest(field, f"{name!r} is not there any more; choose the file again") from None
        except OSError as err:
            raise InvalidRequest(field, f"{name!r} cannot be read ({err.strerror or type(err).__name__})") from None
        source = os.fspath(path)
    label, plugin = _kind_of(head, name, field)
    try:
        image = plugin(source)
    except _DAMAGED:
        raise InvalidRequest(field, f"{name!r} is a truncated or damaged {label}; save or download it "
                                    "again") from None
    try:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise InvalidRequest(field, f"{name!r} is {width}x{height}, over the {MAX_PIXELS // 1_000_000}-megapixel "
                                        "limit (e.g. 8000x8000); scale it down first")
        try:
            image.load()
        except _DAMAGED:
            raise InvalidRequest(field, f"{name!r} is a truncated or damaged {label}; save or download "
                                        "it again") from None
        yield image
    finally:
        image.close()
