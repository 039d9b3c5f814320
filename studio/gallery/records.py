"""What the gallery hands in and out: plain frozen objects, and their mapping to and from rows.

``NewImage`` (what ``GalleryStore.add`` records), ``ImageRecord`` (one row, every parameter),
``GalleryQuery`` (a search), ``Page``, ``ReconcileReport``. ``row_values`` turns a ``NewImage``
into the column values of an ``images`` row; ``record_of`` turns a row back into an
``ImageRecord``. The store's callers never see ORM rows.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from studio.errors import InvalidRequest
from studio.gallery.infotext import format_infotext
from studio.gallery.inputs import is_ref, refs_of
from studio.gallery.schema import ImageRow
from studio.requests import ControlUnit, GenerationRequest, ImagePrompt, LoraSpec, check_unique_loras

SORTS = ("newest", "oldest", "relevance", "seed")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def naive_utc(value: datetime | date | None, *, end: bool = False) -> datetime | None:
    """A datetime (aware or naive UTC) or a date (its start, or with ``end`` its last moment) as the
    naive UTC the ``created_at`` column holds."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.combine(value, datetime.max.time() if end else datetime.min.time())
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def normalise_tag(tag: str) -> str:
    """Tags are single words for search: trimmed, inner whitespace and commas become '-'."""
    cleaned = "-".join(str(tag).replace(",", " ").split())[:100]
    return cleaned


# -- DTOs -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NewImage:
    """What ``GalleryStore.add`` records. ``from_request`` for studio images, ``from_fields``
    for imports (foreign metadata need not make a valid request)."""

    path: Path
    sha256: str
    task: str
    model_id: str
    prompt: str
    seed: int | None                      # None: not known (an imported image without one)
    width: int
    height: int
    negative_prompt: str = ""
    steps: int | None = None
    guidance: float | None = None
    scheduler: str = ""
    strength: float | None = None
    loras: tuple[LoraSpec, ...] = ()
    controls: tuple[ControlUnit, ...] = ()
    image_prompts: tuple[ImagePrompt, ...] = ()
    request_json: str | None = None
    infotext: str = ""
    model_source: str = ""
    model_revision: str = ""
    timings: tuple[tuple[str, float], ...] = ()
    created_at: datetime | None = None
    source: str = "studio"
    favourite: bool = False
    tags: tuple[str, ...] = ()
    input_refs: tuple[str, ...] = ()      # the stored inputs its request reads (``inputs/<sha256>.png``)
    lora_hashes: tuple[tuple[str, str], ...] = ()   # (LoRA name, hash) as a foreign tool wrote them
    owner: str | None = None              # public mode: who made it (``studio.public``); None on a local studio

    @classmethod
    def from_request(cls, request: GenerationRequest, *, path: Path, sha256: str, infotext: str = "",
                     model_source: str = "", model_revision: str = "", timings: dict[str, float] | None = None,
                     created_at: datetime | None = None, source: str = "studio",
                     tags: Sequence[str] = (), owner: str | None = None) -> NewImage:
        """``request`` must be resolved and carry this image's own seed."""
        if request.seed is None or request.width is None or request.height is None:
            raise InvalidRequest("request", "the gallery records resolved requests only (seed and size set)")
        return cls(path=Path(path), sha256=sha256, task=request.task.value, model_id=request.model_id,
                   prompt=request.prompt, negative_prompt=request.negative_prompt, seed=request.seed,
                   width=request.width, height=request.height, steps=request.steps, guidance=request.guidance,
                   scheduler=request.scheduler or "", strength=request.strength, loras=request.loras,
                   controls=request.controls, image_prompts=request.image_prompts, request_json=request.to_json(),
                   infotext=infotext or format_infotext(request, request.seed),
                   model_source=model_source, model_revision=model_revision,
                   timings=tuple((timings or {}).items()), created_at=created_at, source=source, tags=tuple(tags),
                   input_refs=refs_of(request), owner=owner)

    @classmethod
    def from_fields(cls, fields: dict[str, Any], *, path: Path, sha256: str, width: int, height: int,
                    infotext: str = "", request_json: str | None = None, source: str = "import",
                    created_at: datetime | None = None, input_refs: Sequence[str] = (), model_revision: str = "",
                    lora_hashes: Sequence[tuple[str, str]] = ()) -> NewImage:
        task = fields.get("task") or "txt2img"
        return cls(path=Path(path), sha256=sha256, task=getattr(task, "value", str(task)),
                   model_id=str(fields.get("model_id") or ""), prompt=str(fields.get("prompt") or ""),
                   negative_prompt=str(fields.get("negative_prompt") or ""),
                   seed=int(fields["seed"]) if fields.get("seed") is not None else None,
                   width=int(fields.get("width") or width), height=int(fields.get("height") or height),
                   steps=fields.get("steps"), guidance=fields.get("guidance"),
                   scheduler=str(fields.get("scheduler") or ""), strength=fields.get("strength"),
                   loras=tuple(fields.get("loras") or ()), controls=tuple(fields.get("controls") or ()),
                   image_prompts=tuple(fields.get("image_prompts") or ()), request_json=request_json, infotext=infotext,
                   created_at=created_at, source=source, input_refs=tuple(r for r in input_refs if is_ref(r)),
                   model_revision=str(model_revision or "")[:100], lora_hashes=tuple(lora_hashes))


@dataclass(frozen=True, slots=True)
class ImageRecord:
    id: int
    path: str                         # absolute
    created_at: datetime              # UTC, aware
    task: str
    model_id: str
    prompt: str
    negative_prompt: str
    seed: int | None                  # 0..2^64-1; None: not known
    width: int
    height: int
    steps: int | None
    guidance: float | None
    scheduler: str
    strength: float | None
    loras: tuple[LoraSpec, ...]
    controls: tuple[ControlUnit, ...]
    image_prompts: tuple[ImagePrompt, ...]
    timings: tuple[tuple[str, float], ...]
    sha256: str
    infotext: str
    request_json: str | None
    model_source: str
    model_revision: str               # hub commit or file sha256; for imports the model hash its tool wrote
    source: str
    favourite: bool
    missing: bool
    tags: tuple[str, ...]
    lora_hashes: tuple[tuple[str, str], ...] = ()     # (LoRA name, hash) as a foreign tool wrote them
    owner: str | None = None          # public mode: who made it; None on a local studio (never shown)

    @property
    def request(self) -> GenerationRequest | None:
        """The exact request that made this image (batch of one, its own seed), when known."""
        return GenerationRequest.from_json(self.request_json) if self.request_json else None

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "path": self.path, "created_at": self.created_at.isoformat(), "task": self.task,
                "model_id": self.model_id, "model_source": self.model_source, "model_revision": self.model_revision,
                "prompt": self.prompt, "negative_prompt": self.negative_prompt, "seed": self.seed,
                "width": self.width, "height": self.height, "steps": self.steps, "guidance": self.guidance,
                "scheduler": self.scheduler, "strength": self.strength,
                "loras": [{"name": x.name, "weight": x.weight, **({"hash": dict(self.lora_hashes)[x.name]}
                                                                   if x.name in dict(self.lora_hashes) else {})}
                          for x in self.loras],
                "controls": [dataclasses.asdict(c) for c in self.controls],
                "image_prompts": [dataclasses.asdict(p) for p in self.image_prompts],
                "timings": dict(self.timings), "sha256": self.sha256, "infotext": self.infotext,
                "request": json.loads(self.request_json) if self.request_json else None, "source": self.source,
                "favourite": self.favourite, "missing": self.missing, "tags": list(self.tags)}


@dataclass(frozen=True, slots=True)
class GalleryQuery:
    text: str = ""                    # search box: see studio/gallery/search.py
    model_id: str | None = None
    task: str | None = None
    lora: str | None = None           # exact LoRA name
    tag: str | None = None            # exact tag
    favourite: bool | None = None
    date_from: datetime | date | None = None
    date_to: datetime | date | None = None      # a date includes that whole day
    width: int | None = None
    height: int | None = None
    missing: bool | None = None       # None: both; False: only images whose file is there
    seed: int | None = None           # exact (0..2^64-1); ``seed:N`` in the text does the same
    source: str | None = None         # exact: studio, a1111, fooocus, comfyui, ...; or ``source:NAME``
    owner: str | None = None          # public mode: only this visitor's images; None: every image (local)
    sort: str = "newest"              # newest | oldest | relevance | seed
    page: int = 1                     # 1-based
    per_page: int = 50

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise InvalidRequest("sort", f"one of {SORTS}, got {self.sort!r}")
        if self.page < 1 or not 1 <= self.per_page <= 1000:
            raise InvalidRequest("page", f"page >= 1 and per_page within 1..1000, got {self.page}, {self.per_page}")
        if self.seed is not None and not (isinstance(self.seed, int) and 0 <= self.seed <= 2**64 - 1):
            raise InvalidRequest("seed", f"a seed filter within 0..{2**64 - 1}, got {self.seed!r}")
        for name in ("width", "height"):
            if not 0 <= (getattr(self, name) or 0) < 2**31:
                raise InvalidRequest(name, f"a size filter within 0..{2**31 - 1}, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple[ImageRecord, ...]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    flagged_missing: int = 0
    restored: int = 0
    imported: int = 0
    cleaned: int = 0
    errors: tuple[str, ...] = ()
    seconds: float = 0.0
    folders_listed: int = 0           # folders whose mtime changed since the last pass (or all, if full)
    inputs_removed: int = 0           # stored inputs no row used, older than an hour
    missing_inputs: tuple[tuple[int, str], ...] = ()     # (image id, ref): a row whose stored input is gone


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def row_values(image: NewImage, stored_path: str) -> tuple[dict[str, Any], list[str]]:
    """The ``images`` column values of ``image`` (its path as the store keeps it), and its clean tags."""
    tags = sorted({t for t in (normalise_tag(t) for t in image.tags) if t})
    check_unique_loras(image.loras)
    hashes = dict(image.lora_hashes)
    row = dict(
        created_at=naive_utc(image.created_at) or utcnow(), path=stored_path,
        sha256=image.sha256, task=image.task, model_id=image.model_id, model_source=image.model_source,
        model_revision=image.model_revision, prompt=image.prompt, negative_prompt=image.negative_prompt,
        seed=image.seed, width=image.width, height=image.height, steps=image.steps, guidance=image.guidance,
        scheduler=image.scheduler, strength=image.strength,
        loras=[{"name": x.name, "weight": x.weight, **({"hash": hashes[x.name]} if x.name in hashes else {})}
               for x in image.loras],
        controls=[dataclasses.asdict(c) for c in image.controls],
        image_prompt=[dataclasses.asdict(p) for p in image.image_prompts] or None,
        timings=dict(image.timings), request_json=image.request_json, infotext=image.infotext,
        source=image.source, favourite=image.favourite, missing=False,
        lora_names=" ".join(x.name for x in image.loras), tags=" ".join(tags), owner=image.owner)
    return row, tags


def record_of(row: ImageRow, absolute_path: Callable[[str], Path]) -> ImageRecord:
    """The DTO of ``row``; ``absolute_path`` turns its stored path into a file path."""
    prompts = row.image_prompt or []
    prompts = [prompts] if isinstance(prompts, dict) else prompts         # version 1 rows: one {image, scale}
    return ImageRecord(
        id=row.id, path=str(absolute_path(row.path)), created_at=as_utc(row.created_at), task=row.task,
        model_id=row.model_id, prompt=row.prompt, negative_prompt=row.negative_prompt, seed=row.seed,
        width=row.width, height=row.height, steps=row.steps, guidance=row.guidance, scheduler=row.scheduler,
        strength=row.strength, loras=tuple(LoraSpec(x["name"], x["weight"]) for x in row.loras or ()),
        controls=tuple(ControlUnit.from_dict(c) for c in row.controls or ()),
        image_prompts=tuple(ImagePrompt.from_dict(p) for p in prompts),
        timings=tuple((row.timings or {}).items()), sha256=row.sha256, infotext=row.infotext,
        request_json=row.request_json, model_source=row.model_source, model_revision=row.model_revision,
        source=row.source, favourite=bool(row.favourite), missing=bool(row.missing),
        tags=tuple(row.tags.split()) if row.tags else (),
        lora_hashes=tuple((x["name"], x["hash"]) for x in row.loras or () if x.get("hash")), owner=row.owner)
