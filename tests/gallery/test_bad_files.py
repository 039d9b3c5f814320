"""Bad files are the user's error, said plainly: PNG Info, Import and reconcile name the file
(never the folder it was uploaded to) and what is wrong, and write nothing."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from studio.errors import InvalidRequest
from studio.gallery import browse
from studio.gallery.files import write_png
from studio.gallery.imagefile import MAX_PIXELS
from tests.gallery.conftest import image, request


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width`` x ``height`` (a few bytes; decoding it would not be)."""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b""))


def encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buffer, format=fmt)
    return buffer.getvalue()


BAD = {   # file name -> (bytes, what the message must say)
    "cut.png": (encoded("PNG")[:-40], "truncated or damaged PNG"),
    "cut-header.png": (encoded("PNG")[:30], "truncated or damaged PNG"),
    "cut.jpg": (encoded("JPEG")[:-200], "truncated or damaged JPEG"),
    "notes.png": (b"these are my notes, not a picture\n", "is not an image"),
    "empty.png": (b"", "empty file"),
    "huge.png": (png_header_only(20000, 20000), f"20000x20000, over the {MAX_PIXELS // 1_000_000}-megapixel limit"),
    "big.png": (png_header_only(15000, 15000), "15000x15000, over the"),   # Pillow only warns here
}


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    """Where Gradio would put uploads: a server folder the user never sees."""
    folder = tmp_path / "gradio" / "4f2a9c0d1e"
    folder.mkdir(parents=True)
    for name, (data, _) in BAD.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("name", sorted(BAD))
def test_png_info_of_a_bad_file_names_it_and_what_is_wrong(uploads, name):
    started = time.perf_counter()
    with pytest.raises(InvalidRequest) as caught:
        browse.png_info(uploads / name)
    message = str(caught.value)
    assert caught.value.field == "image" and name in message and BAD[name][1] in message
    assert str(uploads) not in message and "gradio" not in message          # no server path
    assert time.perf_counter() - started < 2                                 # nothing decoded


@pytest.mark.parametrize("name", sorted(BAD))
def test_import_of_a_bad_file_writes_nothing(store, outputs, uploads, name):
    with pytest.raises(InvalidRequest, match=BAD[name][1]) as caught:
        store.import_image(uploads / name)
    assert str(uploads) not in str(caught.value)
    assert store.count() == 0 and not any((outputs / "imported").glob("*"))


def test_reconcile_skips_bad_files_with_a_reason_and_imports_the_rest(store, outputs):
    for name, (data, _) in BAD.items():
        if name.endswith((".png", ".jpg")):
            (outputs / "strays").mkdir(exist_ok=True)
            (outputs / "strays" / name).write_bytes(data)
    write_png(image(), outputs / "strays" / "good.png", {"studio": request("a good one").to_json()})
    report = store.reconcile()
    assert report.imported == 1 and store.search(text="good").total == 1
    assert len(report.errors) == len(BAD)
    for name, (_, why) in BAD.items():
        assert any(e.startswith(f"strays/{name}: ") and why in e for e in report.errors), report.errors


def test_a_large_header_under_the_cap_is_checked_as_a_file_not_refused_for_size(tmp_path):
    path = tmp_path / "tall.png"
    path.write_bytes(png_header_only(4000, 4000))       # 16 MP claimed, no pixels: damaged, not too big
    with pytest.raises(InvalidRequest, match="truncated or damaged PNG"):
        browse.png_info(path)


def test_good_png_jpeg_and_webp_still_read(tmp_path):
    for fmt, suffix in (("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".webp")):
        path = tmp_path / f"ok{suffix}"
        path.write_bytes(encoded(fmt))
        info = browse.png_info(path)
        assert (info.width, info.height, info.source) == (64, 64, "none")


def test_png_info_details_show_the_file_name_not_the_upload_path(uploads):
    path = write_png(image(), uploads / "mine.png", {"studio": request("a red cat").to_json()})
    data = browse.png_info_json(browse.png_info(path))
    assert data["file"] == "mine.png" and str(uploads) not in str(data)


@pytest.mark.parametrize("size", ["99999999999999999999x1", "1x99999999999999999999", "0x64", "²x1"])
def test_size_filter_out_of_range_is_a_clear_error(store, size):
    with pytest.raises(InvalidRequest, match="size"):
        store.search(browse.build_query(size=size))


def test_store_search_refuses_sizes_sqlite_cannot_hold(store):
    with pytest.raises(InvalidRequest, match="width"):
        store.search(width=10**20)
