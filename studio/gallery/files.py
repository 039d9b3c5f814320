"""Image files: PNG written atomically (temporary name, fsync, rename) with metadata chunks."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from PIL import Image, PngImagePlugin


def write_png(image: Image.Image, path: Path, text: dict[str, str]) -> Path:
    """Write ``image`` to ``path`` with tEXt/iTXt chunks; no partial file is ever visible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_itxt(key, value) if not value.isascii() else info.add_text(key, value)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format="PNG", pnginfo=info)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def next_image_path(folder: Path, seed: int, when: datetime | None = None) -> Path:
    """``<folder>/<YYYY-MM-DD>/<NNNNN>-<seed>.png``, numbered on from the highest in the day folder."""
    day = folder / (when or datetime.now()).strftime("%Y-%m-%d")
    day.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name.split("-", 1)[0]) for p in day.glob("*.png") if p.name.split("-", 1)[0].isdigit()]
    return day / f"{max(numbers, default=0) + 1:05d}-{seed}.png"


def read_text_chunks(path: Path) -> dict[str, str]:
    with Image.open(path) as im:
        return {k: v for k, v in (getattr(im, "text", None) or im.info).items() if isinstance(v, str)}
