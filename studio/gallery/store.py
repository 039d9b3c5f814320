"""GalleryStore: every image findable, re-usable and re-generable. SQLite + the files on disk.

One row per image (``schema.ImageRow``) holding the full resolved request; the store owns its
transactions and hands out frozen DTOs (``ImageRecord``, ``Page``), never ORM rows.

Files and rows agree:
* writing (``GallerySink``): PNG written atomically first, then one transaction; if the
  transaction fails the file is removed.
* deleting: the file is renamed to ``.deleted-<name>`` first, the row deleted and committed, then
  the renamed file unlinked; a failed transaction renames the file back.
* ``reconcile`` (run when the store opens): rows whose file is gone get ``missing = True`` (and
  lose it when the file comes back), image files under ``outputs_dir`` with no row are imported
  from their own metadata, leftovers of interrupted writes/deletes are settled.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Select, delete, func, insert, literal_column, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from studio.errors import InvalidRequest
from studio.gallery import db as gallery_db
from studio.gallery.files import TEMP_PREFIX, TRASH_PREFIX, sha256_file
from studio.gallery.infotext import format_infotext
from studio.gallery.inputs import FOLDER as INPUTS_FOLDER
from studio.gallery.pnginfo import read_image_info
from studio.gallery.schema import ImageRow, LoraRow, ScannedDir, TagRow
from studio.gallery.search import build_match
from studio.requests import ControlUnit, GenerationRequest, ImagePrompt, LoraSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
IMAGES = ImageRow.__table__
SORTS = ("newest", "oldest", "relevance", "seed")
STALE_TEMP_SECONDS = 3600
SCAN_ABOVE = 500            # matches above which a page is found by walking the date index


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _naive_utc(value: datetime | date | None, *, end: bool = False) -> datetime | None:
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
    seed: int
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

    @classmethod
    def from_request(cls, request: GenerationRequest, *, path: Path, sha256: str, infotext: str = "",
                     model_source: str = "", model_revision: str = "", timings: dict[str, float] | None = None,
                     created_at: datetime | None = None, source: str = "studio",
                     tags: Sequence[str] = ()) -> NewImage:
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
                   timings=tuple((timings or {}).items()), created_at=created_at, source=source, tags=tuple(tags))

    @classmethod
    def from_fields(cls, fields: dict[str, Any], *, path: Path, sha256: str, width: int, height: int,
                    infotext: str = "", request_json: str | None = None, source: str = "import",
                    created_at: datetime | None = None) -> NewImage:
        task = fields.get("task") or "txt2img"
        return cls(path=Path(path), sha256=sha256, task=getattr(task, "value", str(task)),
                   model_id=str(fields.get("model_id") or ""), prompt=str(fields.get("prompt") or ""),
                   negative_prompt=str(fields.get("negative_prompt") or ""),
                   seed=int(fields["seed"]) if fields.get("seed") is not None else -1,
                   width=int(fields.get("width") or width), height=int(fields.get("height") or height),
                   steps=fields.get("steps"), guidance=fields.get("guidance"),
                   scheduler=str(fields.get("scheduler") or ""), strength=fields.get("strength"),
                   loras=tuple(fields.get("loras") or ()), controls=tuple(fields.get("controls") or ()),
                   image_prompts=tuple(fields.get("image_prompts") or ()), request_json=request_json, infotext=infotext,
                   created_at=created_at, source=source)


@dataclass(frozen=True, slots=True)
class ImageRecord:
    id: int
    path: str                         # absolute
    created_at: datetime              # UTC, aware
    task: str
    model_id: str
    prompt: str
    negative_prompt: str
    seed: int
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
    model_revision: str
    source: str
    favourite: bool
    missing: bool
    tags: tuple[str, ...]

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
                "loras": [{"name": x.name, "weight": x.weight} for x in self.loras],
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
    sort: str = "newest"              # newest | oldest | relevance | seed
    page: int = 1                     # 1-based
    per_page: int = 50

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise InvalidRequest("sort", f"one of {SORTS}, got {self.sort!r}")
        if self.page < 1 or not 1 <= self.per_page <= 1000:
            raise InvalidRequest("page", f"page >= 1 and per_page within 1..1000, got {self.page}, {self.per_page}")
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


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


# -- the store ------------------------------------------------------------------------------------
class GalleryStore:
    def __init__(self, outputs_dir: Path, db_path: Path | None = None, *, reconcile: bool = True) -> None:
        self.outputs_dir = Path(outputs_dir).resolve()
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = Path(db_path) if db_path is not None else self.outputs_dir / "gallery.db"
        self.engine = gallery_db.make_engine(self.db_path)
        self.migration = gallery_db.migrate(self.engine, self.db_path)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(sqlite_immediate=True), expire_on_commit=False)
        self._write_lock = threading.RLock()
        self.lock = self._write_lock     # held by GallerySink across file write + row
        self.last_reconcile = self.reconcile() if reconcile else ReconcileReport()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> GalleryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """One write transaction: commits, or rolls back on error. Serialised in this process
        (BEGIN IMMEDIATE + busy_timeout serialise against other processes)."""
        with self._write_lock, self._write.begin() as session:
            yield session

    # -- paths ---------------------------------------------------------------------------------
    def stored_path(self, path: Path | str) -> str:
        """Inside outputs_dir: relative POSIX path (the folder can move); elsewhere absolute."""
        text_path = os.path.abspath(path)
        root = str(self.outputs_dir) + os.sep
        if not text_path.startswith(root):             # maybe through a symlink: resolve, then decide
            text_path = str(Path(text_path).resolve())
        if text_path.startswith(root):
            return text_path[len(root):].replace(os.sep, "/")
        return text_path

    def absolute_path(self, stored: str) -> Path:
        path = Path(stored)
        return path if path.is_absolute() else self.outputs_dir / path

    # -- write ---------------------------------------------------------------------------------
    def add(self, image: NewImage) -> int:
        return self.add_many([image])[0]

    def add_many(self, images: Sequence[NewImage], *, replace: bool = False) -> list[int]:
        """Record several images in one transaction (all or none). Core inserts, not ORM units of
        work: one multi-row INSERT ... RETURNING for the images, one for their LoRAs and tags.
        ``replace``: rows already recorded for these paths are replaced (same transaction)."""
        if not images:
            return []
        values = [self._values(image) for image in images]
        with self._writing() as session:
            if replace:
                session.execute(delete(ImageRow).where(ImageRow.path.in_([v["path"] for v, _, _ in values])))
            ids = list(session.execute(
                insert(IMAGES).returning(IMAGES.c.id, sort_by_parameter_order=True), [v for v, _, _ in values]).scalars())
            loras = [{"image_id": i, "name": x.name, "weight": x.weight}
                     for i, (_, image, _) in zip(ids, values, strict=True) for x in image.loras]
            tags = [{"image_id": i, "tag": t} for i, (_, _, clean) in zip(ids, values, strict=True) for t in clean]
            if loras:
                session.execute(insert(LoraRow.__table__), loras)
            if tags:
                session.execute(insert(TagRow.__table__), tags)
            folders = {v["path"].rpartition("/")[0] for v, _, _ in values if not os.path.isabs(v["path"])}
            if folders:                  # the next reconcile looks at these folders
                session.execute(text("INSERT OR REPLACE INTO scanned_dirs (path, mtime_ns) VALUES (:p, -1)"),
                                [{"p": f} for f in folders])
            return ids

    def _values(self, image: NewImage) -> tuple[dict[str, Any], NewImage, list[str]]:
        tags = sorted({t for t in (normalise_tag(t) for t in image.tags) if t})
        names = [x.name for x in image.loras]
        if len(set(names)) != len(names):
            raise InvalidRequest("loras", f"each LoRA may appear once, got {names}")
        row = dict(
            created_at=_naive_utc(image.created_at) or utcnow(), path=self.stored_path(image.path),
            sha256=image.sha256, task=image.task, model_id=image.model_id, model_source=image.model_source,
            model_revision=image.model_revision, prompt=image.prompt, negative_prompt=image.negative_prompt,
            seed=image.seed, width=image.width, height=image.height, steps=image.steps, guidance=image.guidance,
            scheduler=image.scheduler, strength=image.strength,
            loras=[{"name": x.name, "weight": x.weight} for x in image.loras],
            controls=[dataclasses.asdict(c) for c in image.controls],
            image_prompt=[dataclasses.asdict(p) for p in image.image_prompts] or None,
            timings=dict(image.timings), request_json=image.request_json, infotext=image.infotext,
            source=image.source, favourite=image.favourite, missing=False,
            lora_names=" ".join(names), tags=" ".join(tags))
        return row, image, tags

    def set_favourite(self, image_id: int, favourite: bool = True) -> None:
        with self._writing() as session:
            self._require(session, image_id).favourite = bool(favourite)

    def set_tags(self, image_id: int, tags: Iterable[str]) -> tuple[str, ...]:
        clean = sorted({t for t in (normalise_tag(t) for t in tags) if t})
        with self._writing() as session:
            row = self._require(session, image_id)
            row.tag_rows = [TagRow(tag=t) for t in clean]
            row.tags = " ".join(clean)
        return tuple(clean)

    def add_tags(self, image_id: int, tags: Iterable[str]) -> tuple[str, ...]:
        with self._write_lock:
            current = self._get_or_raise(image_id).tags
            return self.set_tags(image_id, [*current, *tags])

    def remove_tag(self, image_id: int, tag: str) -> tuple[str, ...]:
        with self._write_lock:
            current = self._get_or_raise(image_id).tags
            return self.set_tags(image_id, [t for t in current if t != normalise_tag(tag)])

    def delete(self, image_ids: Iterable[int]) -> int:
        """Delete images: file and row, both or neither. Returns how many rows went. Only files
        under outputs are deleted; a row for a file elsewhere goes, the file stays."""
        ids = sorted(set(int(i) for i in image_ids))
        if not ids:
            return 0
        with self._write_lock:
            with self._read() as session:
                paths = session.execute(select(ImageRow.id, ImageRow.path).where(ImageRow.id.in_(ids))).all()
            moved: list[tuple[Path, Path]] = []
            try:
                for _id, stored in paths:
                    path = self.absolute_path(stored)
                    if not os.path.isabs(stored) and path.exists():
                        trash = path.with_name(TRASH_PREFIX + path.name)
                        os.replace(path, trash)
                        moved.append((path, trash))
                with self._writing() as session:
                    gone = session.execute(delete(ImageRow).where(ImageRow.id.in_(ids))).rowcount
            except BaseException:
                for path, trash in moved:
                    os.replace(trash, path)
                raise
            for _path, trash in moved:
                trash.unlink(missing_ok=True)
            return int(gone or 0)

    # -- read ----------------------------------------------------------------------------------
    def get(self, image_id: int) -> ImageRecord | None:
        with self._read() as session:
            row = session.get(ImageRow, image_id)
            return self._record(row) if row is not None else None

    def _get_or_raise(self, image_id: int) -> ImageRecord:
        record = self.get(image_id)
        if record is None:
            raise InvalidRequest("image_id", f"no gallery image {image_id}")
        return record

    def _require(self, session: Session, image_id: int) -> ImageRow:
        row = session.get(ImageRow, image_id)
        if row is None:
            raise InvalidRequest("image_id", f"no gallery image {image_id}")
        return row

    def request_of(self, image_id: int) -> GenerationRequest:
        """The request to make this image again (same seed, batch of one)."""
        record = self._get_or_raise(image_id)
        if record.request is None:
            raise InvalidRequest("image_id", f"image {image_id} was imported without a studio request "
                                 f"({record.source}); open it in PNG Info to adapt its parameters")
        return record.request

    def count(self) -> int:
        with self._read() as session:
            return int(session.scalar(select(func.count()).select_from(ImageRow)) or 0)

    def search(self, query: GalleryQuery | None = None, **filters: Any) -> Page:
        """Filtered, sorted, paged. ``search(text="cat", lora="x", page=2)`` works too.

        Two steps: the ids of the page (a narrow query SQLite can sort cheaply), then their rows.
        When many rows match (> ``SCAN_ABOVE``), the ids come from walking the ``created_at``
        index and probing the match set (``+images.id IN ...`` keeps SQLite from sorting every
        hit); when few match, from the hits, sorted.
        """
        query = query or GalleryQuery(**filters)
        with self._read() as session:
            total = self._count(session, query)
            scan = total > SCAN_ABOVE and query.sort in ("newest", "oldest")
            ids_stmt = self._ordered(self._filtered(query, select(ImageRow.id), scan=scan), query)
            ids = list(session.scalars(ids_stmt.limit(query.per_page).offset((query.page - 1) * query.per_page)))
            rows = {r.id: r for r in session.scalars(select(ImageRow).where(ImageRow.id.in_(ids)))} if ids else {}
            return Page(tuple(self._record(rows[i]) for i in ids if i in rows), total, query.page, query.per_page)

    def _count(self, session: Session, q: GalleryQuery) -> int:
        match = build_match(q.text)
        only_text = match.positive and not match.negative and GalleryQuery(
            text=q.text, sort=q.sort, page=q.page, per_page=q.per_page, missing=q.missing) == q
        if only_text and q.missing is not True:   # the FTS index knows (triggers keep it equal to images)
            total = int(session.scalar(text("SELECT count(*) FROM images_fts WHERE images_fts MATCH :m"),
                                       {"m": match.positive}) or 0)
            if q.missing is False:                # minus the (few) missing ones, found by their index
                total -= int(session.scalar(self._filtered(
                    GalleryQuery(text=q.text, missing=True), select(func.count(ImageRow.id)))) or 0)
            return total
        return int(session.scalar(self._filtered(q, select(func.count(ImageRow.id)))) or 0)

    def page(self, number: int = 1, per_page: int = 50, **filters: Any) -> Page:
        return self.search(GalleryQuery(page=number, per_page=per_page, **filters))

    def _filtered(self, q: GalleryQuery, stmt: Select | None = None, *, scan: bool = False) -> Select:
        stmt = select(ImageRow) if stmt is None else stmt
        key = literal_column("+images.id") if scan else ImageRow.id
        match = build_match(q.text)
        if match.positive:
            stmt = stmt.where(key.in_(
                text("SELECT rowid FROM images_fts WHERE images_fts MATCH :fts_pos")
                .bindparams(fts_pos=match.positive).columns(ImageRow.id)))
        if match.negative:
            stmt = stmt.where(ImageRow.id.not_in(
                text("SELECT rowid FROM images_fts WHERE images_fts MATCH :fts_neg")
                .bindparams(fts_neg=match.negative).columns(ImageRow.id)))
        if q.model_id:
            stmt = stmt.where(ImageRow.model_id == q.model_id)
        if q.task:
            stmt = stmt.where(ImageRow.task == q.task)
        if q.lora:
            stmt = stmt.where(key.in_(select(LoraRow.image_id).where(LoraRow.name == q.lora)))
        if q.tag:
            stmt = stmt.where(key.in_(select(TagRow.image_id).where(TagRow.tag == normalise_tag(q.tag))))
        # the flags' indexes help find the few True rows; for "False" (nearly every row) they would
        # make SQLite walk the flag index and sort every hit, so "+column" keeps it off them
        for column, wanted in (("favourite", q.favourite), ("missing", q.missing)):
            if wanted is True:
                stmt = stmt.where(getattr(ImageRow, column).is_(True))
            elif wanted is False:
                stmt = stmt.where(literal_column(f"+images.{column}") == 0)
        if q.date_from is not None:
            stmt = stmt.where(ImageRow.created_at >= _naive_utc(q.date_from))
        if q.date_to is not None:
            stmt = stmt.where(ImageRow.created_at <= _naive_utc(q.date_to, end=True))
        if q.width:
            stmt = stmt.where(ImageRow.width == q.width)
        if q.height:
            stmt = stmt.where(ImageRow.height == q.height)
        return stmt

    def _ordered(self, stmt: Select, q: GalleryQuery) -> Select:
        if q.sort == "relevance" and build_match(q.text).positive:
            rank = text("(SELECT rank FROM images_fts WHERE images_fts MATCH :fts_rank AND rowid = images.id)")
            return stmt.order_by(rank.bindparams(fts_rank=build_match(q.text).positive), ImageRow.id.desc())
        if q.sort == "oldest":
            return stmt.order_by(ImageRow.created_at.asc(), ImageRow.id.asc())
        if q.sort == "seed":
            return stmt.order_by(ImageRow.seed.asc(), ImageRow.id.asc())
        return stmt.order_by(ImageRow.created_at.desc(), ImageRow.id.desc())

    def _distinct(self, column) -> list[str]:  # noqa: ANN001
        with self._read() as session:
            return [v for v in session.scalars(select(column).distinct().order_by(column)) if v]

    def model_ids(self) -> list[str]:
        return self._distinct(ImageRow.model_id)

    def lora_names(self) -> list[str]:
        return self._distinct(LoraRow.name)

    def tag_names(self) -> list[str]:
        return self._distinct(TagRow.tag)

    def tasks(self) -> list[str]:
        return self._distinct(ImageRow.task)

    def _record(self, row: ImageRow) -> ImageRecord:
        prompts = row.image_prompt or []
        prompts = [prompts] if isinstance(prompts, dict) else prompts         # version 1 rows: one {image, scale}
        return ImageRecord(
            id=row.id, path=str(self.absolute_path(row.path)), created_at=_as_utc(row.created_at), task=row.task,
            model_id=row.model_id, prompt=row.prompt, negative_prompt=row.negative_prompt, seed=row.seed,
            width=row.width, height=row.height, steps=row.steps, guidance=row.guidance, scheduler=row.scheduler,
            strength=row.strength, loras=tuple(LoraSpec(x["name"], x["weight"]) for x in row.loras or ()),
            controls=tuple(ControlUnit.from_dict(c) for c in row.controls or ()),
            image_prompts=tuple(ImagePrompt.from_dict(p) for p in prompts),
            timings=tuple((row.timings or {}).items()), sha256=row.sha256, infotext=row.infotext,
            request_json=row.request_json, model_source=row.model_source, model_revision=row.model_revision,
            source=row.source, favourite=bool(row.favourite), missing=bool(row.missing),
            tags=tuple(row.tags.split()) if row.tags else ())

    # -- files without rows, rows without files ------------------------------------------------
    def reimport(self, path: Path | str) -> int:
        """(Re-)record a file under outputs from its own metadata; replaces a row for the same path."""
        return self.add_many([self._new_from_file(Path(path).resolve())], replace=True)[0]

    def import_image(self, path: Path | str, *, tags: Sequence[str] = (), name: str | None = None) -> int:
        """Bring any image into the gallery: copied into ``outputs/imported/`` (unless it already
        lies under outputs), recorded from its own metadata (studio, A1111, Fooocus, ComfyUI).
        Content already in the gallery is not copied again: its row's id is returned.
        ``studio.gallery.imports.import_image`` also says which of the two happened."""
        from studio.gallery.imports import import_image

        return import_image(self, path, tags=tags, name=name).image_id

    def ids_with_sha256(self, sha256: str) -> list[int]:
        """Rows recording a file with this content, oldest first (no index: imports only ask)."""
        with self._read() as session:
            return list(session.scalars(select(ImageRow.id).where(ImageRow.sha256 == sha256).order_by(ImageRow.id)))

    def _id_for_path(self, stored: str) -> int | None:
        with self._read() as session:
            return session.scalar(select(ImageRow.id).where(ImageRow.path == stored))

    def _new_from_file(self, path: Path, name: str | None = None) -> NewImage:
        info = read_image_info(path, name)
        created = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        sha = sha256_file(path)
        if info.request is not None and info.source == "studio":
            request = info.request
            return NewImage.from_request(request, path=path, sha256=sha, infotext=info.infotext,
                                         created_at=created, source="studio") \
                if request.seed is not None and request.width and request.height else \
                NewImage.from_fields(info.fields, path=path, sha256=sha, width=info.width, height=info.height,
                                     infotext=info.infotext, request_json=request.to_json(), created_at=created)
        request_json = info.request.to_json() if info.request is not None else None
        return NewImage.from_fields(info.fields, path=path, sha256=sha, width=info.width, height=info.height,
                                    infotext=info.infotext, request_json=request_json,
                                    source=info.source if info.source != "none" else "import", created_at=created)

    def _walk(self, known: dict[str, int]) -> tuple[dict[str, set[str]], dict[str, int], list[Path], list[Path]]:
        """Folders under outputs. A folder whose mtime equals the one recorded in ``known`` is not
        listed (no file came or went); its known sub-folders are still visited. Returns the image
        files of each listed folder, the mtime to record per folder seen (-1: "look again next
        time", for folders changed in the last 2 s, whose mtime may not tell a later change),
        interrupted deletes and temp files. Plain strings: at 100k files this is the cost of opening."""
        root = str(self.outputs_dir)
        listed: dict[str, set[str]] = {}
        seen: dict[str, int] = {}
        trash: list[Path] = []
        temps: list[Path] = []
        now = time.time_ns()
        stack = ["", *known]        # every known folder is checked; listing finds the new ones
        while stack:
            rel = stack.pop()
            if rel in seen:
                continue
            folder = os.path.join(root, rel) if rel else root
            try:
                mtime = os.stat(folder).st_mtime_ns
            except OSError:
                continue
            seen[rel] = -1 if now - mtime < 2_000_000_000 else mtime
            if known.get(rel) == mtime:
                continue
            files: set[str] = set()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                seen[rel] = -1
                continue
            prefix = rel + "/" if rel else ""
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    if name.startswith(TRASH_PREFIX):
                        trash.append(Path(entry.path))
                    elif name.startswith(TEMP_PREFIX):
                        temps.append(Path(entry.path))
                elif entry.is_dir(follow_symlinks=False):
                    if not (rel == "" and name == INPUTS_FOLDER):     # stored inputs are not gallery images
                        stack.append(prefix + name)
                elif name.lower().endswith(IMAGE_SUFFIXES):
                    files.add(prefix + name)
            listed[rel] = files
        return listed, seen, trash, temps

    def _rows_in(self, conn, folders: Iterable[str]) -> dict[str, tuple[int, bool]]:  # noqa: ANN001
        """Rows whose file lies directly in one of ``folders`` (path range on the unique index)."""
        out: dict[str, tuple[int, bool]] = {}
        for rel in folders:
            if rel:
                rows = conn.exec_driver_sql("SELECT id, path, missing FROM images WHERE path >= ? AND path < ?",
                                            (rel + "/", rel + "0")).all()
            else:
                rows = conn.exec_driver_sql("SELECT id, path, missing FROM images WHERE instr(path, '/') = 0").all()
            depth = rel.count("/") + 1 if rel else 0
            out.update({path: (i, bool(m)) for i, path, m in rows if path.count("/") == depth})
        return out

    def reconcile(self, *, full: bool = False) -> ReconcileReport:
        """Make rows and files agree (see the module doc). Safe to run at any time. Folders
        unchanged since the last pass are skipped unless ``full``."""
        started = time.perf_counter()
        errors: list[str] = []
        with self._write_lock:
            with self.engine.connect() as conn:
                known = {} if full else dict(conn.exec_driver_sql("SELECT path, mtime_ns FROM scanned_dirs").all())
            listed, seen, trash, temps = self._walk(known)
            vanished = [rel for rel in known if rel not in seen]
            with self.engine.connect() as conn:
                if full or not known:
                    rows = {p: (i, bool(m)) for i, p, m in
                            conn.exec_driver_sql("SELECT id, path, missing FROM images").all()}
                else:
                    rows = self._rows_in(conn, [*listed, *vanished])
                    rows.update({p: (i, bool(m)) for i, p, m in conn.exec_driver_sql(
                        "SELECT id, path, missing FROM images WHERE path >= '/' AND path < '0'").all()})
            files = set().union(*listed.values()) if listed else set()
            cleaned = 0
            for item in trash:        # a delete that stopped half-way: its row decides
                original = item.with_name(item.name[len(TRASH_PREFIX):])
                stored = self.stored_path(original)
                if stored in rows and not original.exists():
                    os.replace(item, original)
                    files.add(stored)
                else:
                    item.unlink(missing_ok=True)
                    cleaned += 1
            now = time.time()
            for item in temps:        # a write that stopped before its rename
                try:
                    if now - item.stat().st_mtime > STALE_TEMP_SECONDS:
                        item.unlink()
                        cleaned += 1
                except OSError:
                    pass
            gone, back = [], []
            for stored, (image_id, missing) in rows.items():
                if os.path.isabs(stored):
                    exists = os.path.exists(stored)
                elif full or not known or stored.rpartition("/")[0] in listed or stored.rpartition("/")[0] in vanished:
                    exists = stored in files
                else:
                    continue
                if not exists and not missing:
                    gone.append(image_id)
                elif exists and missing:
                    back.append(image_id)
            for ids, flag in ((gone, True), (back, False)):
                for i in range(0, len(ids), 500):
                    with self._writing() as session:
                        session.execute(update(ImageRow).where(ImageRow.id.in_(ids[i:i + 500])).values(missing=flag))
            imported = 0
            for stored in sorted(files - rows.keys()):
                try:
                    self.add(self._new_from_file(self.outputs_dir / stored))
                    imported += 1
                except Exception as err:  # noqa: BLE001 - one unreadable file must not stop the pass
                    errors.append(f"{stored}: {err}")
                    seen[stored.rpartition("/")[0]] = -1
            with self._writing() as session:
                session.execute(delete(ScannedDir))
                if seen:
                    session.execute(insert(ScannedDir), [{"path": p, "mtime_ns": m} for p, m in seen.items()])
        return ReconcileReport(len(gone), len(back), imported, cleaned, tuple(errors),
                               time.perf_counter() - started, len(listed))

    # -- export ----------------------------------------------------------------------------------
    def export_zip(self, image_ids: Iterable[int], destination: Path | str) -> Path:
        """A zip of the selected images with ``metadata.json`` (every record) and one
        ``<name>.txt`` infotext per image. Missing files are listed, not fatal."""
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        records = [r for r in (self.get(i) for i in image_ids) if r is not None]
        tmp = destination.with_name(TEMP_PREFIX + destination.name)
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            meta = []
            for record in records:
                entry = record.to_dict()
                name = f"{record.id:06d}-{Path(record.path).name}"
                if Path(record.path).is_file():
                    archive.write(record.path, f"images/{name}")
                    entry["file"] = f"images/{name}"
                else:
                    entry["file"] = None
                if record.infotext:
                    archive.writestr(f"images/{Path(name).stem}.txt", record.infotext)
                meta.append(entry)
            archive.writestr("metadata.json", json.dumps(meta, ensure_ascii=False, indent=1))
        os.replace(tmp, destination)
        return destination

