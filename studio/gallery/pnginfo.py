"""PNG Info: any image in, the parameters it carries out (this studio, A1111/Forge, Fooocus, ComfyUI,
InvokeAI, SwarmUI, NovelAI).

``read_chunks`` gets an image's text chunks (PNG text chunks; for JPEG/WebP the EXIF UserComment
as ``parameters`` and Fooocus's MakerNote as ``fooocus_scheme``); ``studio.gallery.readers`` reads
them (one reader per tool, tried in order: the studio's exact request first). ``fields`` are
``GenerationRequest`` keyword arguments; ``request`` is the checked request when they make one (a
foreign 1000x1000 image, say, does not: sizes must be multiples of 16), else ``None`` with
``problem`` saying why; ``notes`` name values that were read but left out. An image no reader
understands has source "none" and a ``problem`` saying so, never an error.

A file that is not a whole image (empty, not an image, truncated, over ``imagefile.MAX_PIXELS``)
raises ``InvalidRequest`` naming the file and what is wrong (see ``studio/gallery/imagefile.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from studio.errors import StudioError
from studio.gallery import readers
from studio.gallery import pngchunks
from studio.gallery.imagefile import MAX_PIXELS, is_png, open_image, read_bytes
from studio.requests import GenerationRequest

NO_PARAMETERS = "no generation parameters in this image"


@dataclass(frozen=True, slots=True)
class ImageInfo:
    path: str
    source: str                     # studio | a1111 | fooocus | comfyui | invokeai | swarmui | novelai | none
    width: int = 0
    height: int = 0
    infotext: str = ""                            # the A1111 text when there is one
    parameters: dict[str, Any] = field(default_factory=dict)   # parsed, as the source names them
    fields: dict[str, Any] = field(default_factory=dict)       # GenerationRequest keyword arguments
    request: GenerationRequest | None = None
    problem: str = ""
    chunks: dict[str, str] = field(default_factory=dict)       # every text chunk, raw
    model_hash: str = ""                                       # the model's file by hash, as the source wrote it
    lora_hashes: tuple[tuple[str, str], ...] = ()              # (LoRA name, hash)
    notes: tuple[str, ...] = ()                                # values read but left out, and why

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "source": self.source, "width": self.width, "height": self.height,
                "infotext": self.infotext, "parameters": self.parameters,
                "request": self.request.to_dict() if self.request else None, "problem": self.problem,
                "notes": list(self.notes), "model_hash": self.model_hash, "lora_hashes": dict(self.lora_hashes)}

    @property
    def problems(self) -> str:
        """Why the parameters are not a request as they stand, and what was left out: one text."""
        return "; ".join(x for x in (self.problem, *self.notes) if x)


def _exif_comment(im: Image.Image) -> str:
    """EXIF UserComment (0x9286) in JPEG and WebP: A1111 and SwarmUI write it in the Exif IFD (A1111
    as "UNICODE" + UTF-16), Fooocus in IFD0 as plain text."""
    try:
        exif = im.getexif()
        raw = exif.get_ifd(0x8769).get(0x9286) or exif.get(0x9286)
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


def _maker_note(im: Image.Image) -> str:
    """Fooocus writes its metadata scheme ("fooocus" or "a1111") to EXIF MakerNote (0x927C)."""
    try:
        exif = im.getexif()
        raw = exif.get(0x927C) or exif.get_ifd(0x8769).get(0x927C)
    except Exception:  # noqa: BLE001 - broken EXIF: no scheme
        return ""
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", errors="replace")
    return raw.strip("\0 ").lower() if isinstance(raw, str) and raw.strip("\0 ").lower() in ("fooocus", "a1111") else ""


def read_chunks(path: Path, name: str | None = None) -> tuple[dict[str, str], int, int]:
    """Every text chunk (and the EXIF comment as "parameters", Fooocus's MakerNote as
    "fooocus_scheme"), width, height."""
    name = name or Path(path).name
    return chunks_of(read_bytes(path, name), name)


def chunks_of(data: bytes, name: str) -> tuple[dict[str, str], int, int]:
    """``read_chunks`` of a file's bytes: a PNG is checked and read chunk by chunk (``pngchunks``,
    no pixel decoded), JPEG and WebP through Pillow."""
    if is_png(data):
        width, height, chunks = pngchunks.scan(data, name, MAX_PIXELS)
        return chunks, width, height
    with open_image(data, name) as im:
        info = getattr(im, "text", None) or im.info
        chunks = {k: v for k, v in info.items() if isinstance(v, str)}
        if "parameters" not in chunks:
            comment = _exif_comment(im)
            if comment:
                chunks["parameters"] = comment
                scheme = _maker_note(im)
                if scheme and "fooocus_scheme" not in chunks:
                    chunks["fooocus_scheme"] = scheme
        return chunks, im.width, im.height


def _checked(fields: dict[str, Any]) -> tuple[GenerationRequest | None, str]:
    try:
        return GenerationRequest(**fields), ""
    except (StudioError, TypeError, ValueError) as err:
        return None, str(err)


def read_image_info(path: str | Path, name: str | None = None) -> ImageInfo:
    """The parameters any image carries. Never raises for an image without (readable) metadata;
    raises ``InvalidRequest`` for a file that is not a whole image (``name``: the file as the user
    knows it, default its base name)."""
    path = Path(path)
    chunks, width, height = read_chunks(path, name)
    return info_from_chunks(str(path), chunks, width, height)


def info_from_chunks(path: str, chunks: dict[str, str], width: int, height: int) -> ImageInfo:
    """What ``chunks`` of an image of ``width`` x ``height`` say (see the module doc)."""
    reading, problems = readers.read(chunks, (width, height))
    if reading is None:
        problem = "; ".join((NO_PARAMETERS, *problems))
        return ImageInfo(path, "none", width, height, problem=problem, chunks=chunks)
    fields = dict(reading.fields)
    if reading.source != "studio" and not (fields.get("width") and fields.get("height")):
        fields["width"], fields["height"] = width, height          # the image's own size when the tool wrote none
    request, problem = _checked(fields)
    return ImageInfo(path, reading.source, width, height, reading.infotext, reading.parameters, fields, request,
                     problem, chunks, reading.model_hash, reading.lora_hashes, reading.notes)
