"""PNG Info: any image in, the parameters it carries out (studio, A1111/Forge, ComfyUI, Fooocus).

Order of trust: the studio's own "studio" JSON chunk (the exact resolved request), then
Fooocus JSON "parameters", then A1111 text "parameters" (PNG text chunk, or EXIF UserComment in
JPEG/WebP), then ComfyUI's "prompt" graph. ``fields`` are ``GenerationRequest`` keyword
arguments; ``request`` is the checked request when they make one (a foreign 1000x1000 image,
say, does not: sizes must be multiples of 16), else ``None`` with ``problem`` saying why.

A file that is not a whole image (empty, not an image, truncated, over ``imagefile.MAX_PIXELS``)
raises ``InvalidRequest`` naming the file and what is wrong (see ``studio/gallery/imagefile.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from studio.errors import StudioError
from studio.gallery import infotext
from studio.gallery.imagefile import open_image
from studio.requests import GenerationRequest


@dataclass(frozen=True, slots=True)
class ImageInfo:
    path: str
    source: str                                   # studio | a1111 | fooocus | comfyui | none
    width: int = 0
    height: int = 0
    infotext: str = ""                            # the A1111 text when there is one
    parameters: dict[str, Any] = field(default_factory=dict)   # parsed, as the source names them
    fields: dict[str, Any] = field(default_factory=dict)       # GenerationRequest keyword arguments
    request: GenerationRequest | None = None
    problem: str = ""
    chunks: dict[str, str] = field(default_factory=dict)       # every text chunk, raw

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "source": self.source, "width": self.width, "height": self.height,
                "infotext": self.infotext, "parameters": self.parameters,
                "request": self.request.to_dict() if self.request else None, "problem": self.problem}


def _exif_comment(im: Image.Image) -> str:
    """A1111 writes parameters to EXIF UserComment (0x9286) in JPEG and WebP."""
    try:
        raw = im.getexif().get_ifd(0x8769).get(0x9286)
    except Exception:  # noqa: BLE001 - broken EXIF is common; it just means "no parameters"
        return ""
    if isinstance(raw, bytes):
        head, body = raw[:8], raw[8:]
        if head.startswith(b"UNICODE"):
            for codec in ("utf-16-be", "utf-16-le"):
                try:
                    text = body.decode(codec)
                    if text.isprintable() or "\n" in text:
                        return text
                except UnicodeDecodeError:
                    continue
        return raw.decode("utf-8", errors="replace").lstrip("ASCII\0")
    return raw if isinstance(raw, str) else ""


def read_chunks(path: Path, name: str | None = None) -> tuple[dict[str, str], int, int]:
    """Every text chunk (and A1111's EXIF comment as "parameters"), width, height."""
    with open_image(path, name) as im:
        info = getattr(im, "text", None) or im.info
        chunks = {k: v for k, v in info.items() if isinstance(v, str)}
        if "parameters" not in chunks:
            comment = _exif_comment(im)
            if comment:
                chunks["parameters"] = comment
        return chunks, im.width, im.height


def _checked(fields: dict[str, Any]) -> tuple[GenerationRequest | None, str]:
    try:
        return GenerationRequest(**fields), ""
    except (StudioError, TypeError, ValueError) as err:
        return None, str(err)


def read_image_info(path: str | Path, name: str | None = None) -> ImageInfo:
    """The parameters any image carries. Never raises for an image without metadata; raises
    ``InvalidRequest`` for a file that is not a whole image (``name``: the file as the user knows
    it, default its base name)."""
    path = Path(path)
    chunks, width, height = read_chunks(path, name)
    text = chunks.get("parameters", "")
    if chunks.get("studio"):
        try:
            request = GenerationRequest.from_json(chunks["studio"])
            return ImageInfo(str(path), "studio", width, height, text, request.to_dict(),
                             _fields_of(request), request, chunks=chunks)
        except (StudioError, json.JSONDecodeError, TypeError, ValueError):
            pass    # fall through to the interop readers
    fooocus = infotext.parse_fooocus(text) if text.lstrip().startswith("{") else None
    if fooocus is not None:
        fields = infotext.fields_from_fooocus(fooocus)
        return ImageInfo(str(path), "fooocus", width, height, text, fooocus, fields, *_checked(fields), chunks=chunks)
    if text:
        parsed = infotext.parse_infotext(text)
        fields = infotext.fields_from_infotext(parsed)
        return ImageInfo(str(path), "a1111", width, height, text, parsed, fields, *_checked(fields), chunks=chunks)
    if chunks.get("prompt"):
        fields = infotext.fields_from_comfyui(chunks["prompt"])
        if fields is not None:
            fields.setdefault("width", width)
            fields.setdefault("height", height)
            graph = json.loads(chunks["prompt"])
            return ImageInfo(str(path), "comfyui", width, height, "", graph, fields, *_checked(fields), chunks=chunks)
    return ImageInfo(str(path), "none", width, height, problem="no generation parameters in this image", chunks=chunks)


def _fields_of(request: GenerationRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in request.__dataclass_fields__}
