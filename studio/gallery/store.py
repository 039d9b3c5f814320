"""GalleryStore: every image findable, re-usable and re-generable. SQLite + the files on disk.

One row per image (``schema.ImageRow``) holding the full resolved request; the store owns its
transactions and hands out frozen DTOs (``records``: ``ImageRecord``, ``Page``), never ORM rows.

Files and rows agree:
* writing (``GallerySink``): PNG written atomically first, then one transaction; if the
  transaction fails the file is removed.
* deleting: the file is renamed to ``.deleted-<name>`` first, the row deleted and committed, then
  the renamed file unlinked; a failed transaction renames the file back. A stored input
  (``outputs/inputs/``, table ``image_inputs``) goes the same way with the last row that uses it.
* ``reconcile`` (run when the store opens; ``studio.gallery.reconcile``): rows whose file is gone
  get ``missing = True`` (and lose it when the file comes back), image files under ``outputs_dir``
  with no row are imported from their own metadata, leftovers of interrupted writes/deletes are
  settled.

Beside it: ``records`` (the DTOs and row mapping), ``search`` (the query plan), ``reconcile``,
``export`` (zip), ``imports`` (bringing a file in).

Owners (public mode, ``studio.public``): every method that reads or changes rows takes ``owner``.
None (a local studio) means every row; a string means that visitor's rows only, and any other row
is treated as if it did not exist: the same "no gallery image N" as an id never made, so ids
cannot be probed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from studio.errors import InvalidRequest
from studio.gallery import db as gallery_db
from studio.gallery import export as exporting
from studio.gallery import reconcile as reconciling
from studio.gallery import search as planning
from studio.gallery.files import TEMP_PREFIX, TRASH_PREFIX
from studio.gallery.inputs import FOLDER as INPUTS_FOLDER
from studio.gallery.inputs import InputStore, is_ref
from studio.gallery.records import (SORTS, GalleryQuery, ImageRecord, NewImage, Page, ReconcileReport, as_utc,
                                    normalise_tag, record_of, row_values, utcnow)
from studio.gallery.schema import ImageRow, InputUseRow, LoraRow, TagRow
from studio.requests import GenerationRequest

__all__ = ["SORTS", "TEMP_PREFIX", "TRASH_PREFIX", "GalleryQuery", "GalleryStore", "ImageRecord", "NewImage", "Page",
           "ReconcileReport", "normalise_tag", "utcnow"]

IMAGES = ImageRow.__table__


class GalleryStore:
    def __init__(self, outputs_dir: Path, db_path: Path | None = None, *, reconcile: bool = True) -> None:
        self.outputs_dir = Path(outputs_dir).resolve()
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = Path(db_path) if db_path is not None else self.outputs_dir / "gallery.db"
        self.inputs = InputStore(self.outputs_dir)
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
        work: one multi-row INSERT ... RETURNING for the images, one each for their LoRAs, tags and
        stored inputs. ``replace``: rows already recorded for these paths are replaced (same
        transaction)."""
        if not images:
            return []
        values = [(*row_values(image, self.stored_path(image.path)), image) for image in images]
        with self._writing() as session:
            if replace:
                session.execute(delete(ImageRow).where(ImageRow.path.in_([v["path"] for v, _, _ in values])))
            ids = list(session.execute(
                insert(IMAGES).returning(IMAGES.c.id, sort_by_parameter_order=True), [v for v, _, _ in values]).scalars())
            loras = [{"image_id": i, "name": x.name, "weight": x.weight}
                     for i, (_, _, image) in zip(ids, values, strict=True) for x in image.loras]
            tags = [{"image_id": i, "tag": t} for i, (_, clean, _) in zip(ids, values, strict=True) for t in clean]
            if loras:
                session.execute(insert(LoraRow.__table__), loras)
            if tags:
                session.execute(insert(TagRow.__table__), tags)
            uses = [{"image_id": i, "ref": ref} for i, (_, _, image) in zip(ids, values, strict=True)
                    for ref in sorted(set(image.input_refs)) if is_ref(ref)]
            if uses:
                session.execute(insert(InputUseRow.__table__), uses)
            folders = {v["path"].rpartition("/")[0] for v, _, _ in values if not os.path.isabs(v["path"])}
            if uses or replace:          # inputs the rows name may be missing, or unused now
                folders.add(INPUTS_FOLDER)
            if folders:                  # the next reconcile looks at these folders
                session.execute(text("INSERT OR REPLACE INTO scanned_dirs (path, mtime_ns) VALUES (:p, -1)"),
                                [{"p": f} for f in folders])
            return ids

    def set_favourite(self, image_id: int, favourite: bool = True, *, owner: str | None = None) -> None:
        with self._writing() as session:
            self._require(session, image_id, owner).favourite = bool(favourite)

    def set_tags(self, image_id: int, tags: Iterable[str], *, owner: str | None = None) -> tuple[str, ...]:
        clean = sorted({t for t in (normalise_tag(t) for t in tags) if t})
        with self._writing() as session:
            row = self._require(session, image_id, owner)
            row.tag_rows = [TagRow(tag=t) for t in clean]
            row.tags = " ".join(clean)
        return tuple(clean)

    def add_tags(self, image_id: int, tags: Iterable[str], *, owner: str | None = None) -> tuple[str, ...]:
        with self._write_lock:
            current = self._get_or_raise(image_id, owner).tags
            return self.set_tags(image_id, [*current, *tags], owner=owner)

    def remove_tag(self, image_id: int, tag: str, *, owner: str | None = None) -> tuple[str, ...]:
        with self._write_lock:
            current = self._get_or_raise(image_id, owner).tags
            return self.set_tags(image_id, [t for t in current if t != normalise_tag(tag)], owner=owner)

    def delete(self, image_ids: Iterable[int], *, owner: str | None = None) -> int:
        """Delete images: file and row, both or neither. Returns how many rows went. Only files
        under outputs are deleted; a row for a file elsewhere goes, the file stays.

        A stored input goes with the last row that uses it, the same way (renamed to
        ``.deleted-<name>`` inside the transaction that deletes the rows, so no other writer can
        start using it in between; renamed back if that fails). One that was stored again after
        the newest of those rows was made stays: a run may be using it now (reconcile removes it
        once it is an hour old and still unused). ``owner``: only that visitor's images go (another's
        id counts as not there)."""
        ids = sorted(set(int(i) for i in image_ids))
        if not ids:
            return 0
        with self._write_lock:
            with self._read() as session:
                paths = session.execute(_mine(select(ImageRow.id, ImageRow.path).where(ImageRow.id.in_(ids)),
                                              owner)).all()
                ids = [i for i, _ in paths]
                if not ids:
                    return 0
                made = dict(session.execute(
                    select(InputUseRow.ref, func.max(ImageRow.created_at)).join(ImageRow)
                    .where(InputUseRow.image_id.in_(ids)).group_by(InputUseRow.ref)).all())
            moved: list[tuple[Path, Path]] = []
            try:
                for _id, stored in paths:
                    path = self.absolute_path(stored)
                    if not os.path.isabs(stored) and path.exists():
                        moved.append(_to_trash(path))
                with self._writing() as session:
                    gone = session.execute(delete(ImageRow).where(ImageRow.id.in_(ids))).rowcount
                    if made:
                        used = set(session.scalars(select(InputUseRow.ref).where(InputUseRow.ref.in_(list(made)))))
                        kept = False
                        for ref in sorted(set(made) - used):
                            path = self.outputs_dir / ref
                            if not path.is_file():
                                continue
                            if self.inputs.in_use(ref) or path.stat().st_mtime > as_utc(made[ref]).timestamp():
                                kept = True              # stored again since: a run may be using it
                                continue
                            moved.append(_to_trash(path))
                        if kept:                         # the next reconcile looks at the inputs again
                            session.execute(text("INSERT OR REPLACE INTO scanned_dirs (path, mtime_ns) "
                                                 "VALUES (:p, -1)"), {"p": INPUTS_FOLDER})
            except BaseException:
                for path, trash in moved:
                    os.replace(trash, path)
                raise
            for _path, trash in moved:
                trash.unlink(missing_ok=True)
            return int(gone or 0)

    # -- read ----------------------------------------------------------------------------------
    def get(self, image_id: int, *, owner: str | None = None) -> ImageRecord | None:
        """The image, or None when there is none (or, with ``owner``, when it is another visitor's)."""
        with self._read() as session:
            row = session.get(ImageRow, image_id)
            return self._record(row) if row is not None and _visible(row, owner) else None

    def _get_or_raise(self, image_id: int, owner: str | None = None) -> ImageRecord:
        record = self.get(image_id, owner=owner)
        if record is None:
            raise InvalidRequest("image_id", f"no gallery image {image_id}")
        return record

    def _require(self, session: Session, image_id: int, owner: str | None = None) -> ImageRow:
        row = session.get(ImageRow, image_id)
        if row is None or not _visible(row, owner):
            raise InvalidRequest("image_id", f"no gallery image {image_id}")
        return row

    def request_of(self, image_id: int, *, owner: str | None = None) -> GenerationRequest:
        """The request to make this image again (same seed, batch of one)."""
        record = self._get_or_raise(image_id, owner)
        if record.request is None:
            raise InvalidRequest("image_id", f"image {image_id} was imported without a studio request "
                                 f"({record.source}); open it in PNG Info to adapt its parameters")
        return record.request

    def count(self, *, owner: str | None = None) -> int:
        with self._read() as session:
            return int(session.scalar(_mine(select(func.count()).select_from(ImageRow), owner)) or 0)

    def search(self, query: GalleryQuery | None = None, **filters: Any) -> Page:
        """Filtered, sorted, paged. ``search(text="cat", lora="x", page=2)`` works too (the plan:
        ``studio.gallery.search.page_ids``)."""
        query = query or GalleryQuery(**filters)
        with self._read() as session:
            ids, total = planning.page_ids(session, query)
            rows = {r.id: r for r in session.scalars(select(ImageRow).where(ImageRow.id.in_(ids)))} if ids else {}
            return Page(tuple(self._record(rows[i]) for i in ids if i in rows), total, query.page, query.per_page)

    def page(self, number: int = 1, per_page: int = 50, **filters: Any) -> Page:
        return self.search(GalleryQuery(page=number, per_page=per_page, **filters))

    def _distinct(self, column, owner: str | None = None) -> list[str]:  # noqa: ANN001
        stmt = select(column).distinct().order_by(column)
        if owner is not None:
            if column.table is not IMAGES:
                stmt = stmt.join(ImageRow, ImageRow.id == column.table.c.image_id)
            stmt = stmt.where(ImageRow.owner == owner)
        with self._read() as session:
            return [v for v in session.scalars(stmt) if v]

    def model_ids(self, *, owner: str | None = None) -> list[str]:
        return self._distinct(ImageRow.model_id, owner)

    def lora_names(self, *, owner: str | None = None) -> list[str]:
        return self._distinct(LoraRow.name, owner)

    def tag_names(self, *, owner: str | None = None) -> list[str]:
        return self._distinct(TagRow.tag, owner)

    def tasks(self, *, owner: str | None = None) -> list[str]:
        return self._distinct(ImageRow.task, owner)

    def owns_file(self, owner: str, stored: str) -> bool:
        """Whether ``stored`` (a path relative to outputs) is one of ``owner``'s images, or a stored
        input one of its images reads (public mode serves those files to that visitor only)."""
        with self._read() as session:
            if session.scalar(select(ImageRow.id).where(ImageRow.path == stored, ImageRow.owner == owner)):
                return True
            return is_ref(stored) and session.scalar(
                select(InputUseRow.image_id).join(ImageRow)
                .where(InputUseRow.ref == stored, ImageRow.owner == owner).limit(1)) is not None

    def _record(self, row: ImageRow) -> ImageRecord:
        return record_of(row, self.absolute_path)

    # -- files without rows, rows without files ------------------------------------------------
    def reimport(self, path: Path | str) -> int:
        """(Re-)record a file under outputs from its own metadata; replaces a row for the same path."""
        return self.add_many([reconciling.new_from_file(Path(path).resolve())], replace=True)[0]

    def import_image(self, path: Path | str, *, tags: Sequence[str] = (), name: str | None = None) -> int:
        """Bring any image into the gallery: copied into ``outputs/imported/`` (unless it already
        lies under outputs), recorded from its own metadata (``studio.gallery.readers``).
        Content already in the gallery is not copied again: its row's id is returned.
        ``studio.gallery.imports.import_image`` also says which of the two happened."""
        from studio.gallery.imports import import_image

        return import_image(self, path, tags=tags, name=name).image_id

    def ids_with_sha256(self, sha256: str) -> list[int]:
        """Rows recording a file with this content, oldest first (index ``ix_images_sha256``)."""
        with self._read() as session:
            return list(session.scalars(select(ImageRow.id).where(ImageRow.sha256 == sha256).order_by(ImageRow.id)))

    def inputs_of(self, image_ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
        """The stored inputs (``inputs/<sha256>.png``) each image's request reads; images with none
        are left out."""
        ids = sorted(set(int(i) for i in image_ids))
        out: dict[int, list[str]] = {}
        with self._read() as session:
            for i in range(0, len(ids), 500):
                for image_id, ref in session.execute(
                        select(InputUseRow.image_id, InputUseRow.ref).where(InputUseRow.image_id.in_(ids[i:i + 500]))
                        .order_by(InputUseRow.image_id, InputUseRow.ref)):
                    out.setdefault(image_id, []).append(ref)
        return {image_id: tuple(refs) for image_id, refs in out.items()}

    def ids_using_input(self, ref: str) -> list[int]:
        """Rows whose request reads the stored input ``ref``, oldest first."""
        with self._read() as session:
            return list(session.scalars(select(InputUseRow.image_id).where(InputUseRow.ref == ref)
                                        .order_by(InputUseRow.image_id)))

    def _id_for_path(self, stored: str) -> int | None:
        with self._read() as session:
            return session.scalar(select(ImageRow.id).where(ImageRow.path == stored))

    def _new_from_file(self, path: Path, name: str | None = None) -> NewImage:
        return reconciling.new_from_file(path, name)

    def reconcile(self, *, full: bool = False) -> ReconcileReport:
        """Make rows and files agree (``studio.gallery.reconcile``). Safe to run at any time. Folders
        unchanged since the last pass are skipped unless ``full``."""
        return reconciling.reconcile(self, full=full)

    # -- export ----------------------------------------------------------------------------------
    def export_zip(self, image_ids: Iterable[int], destination: Path | str, *, owner: str | None = None) -> Path:
        """A zip of the selected images, the stored inputs they use (once each), ``metadata.json``
        (every record) and one ``<name>.txt`` infotext per image (``studio.gallery.export``).
        ``owner``: another visitor's ids are left out as if they did not exist."""
        return exporting.export_zip(self, image_ids, destination, owner=owner)


def _mine(stmt, owner: str | None):  # noqa: ANN001, ANN202 - a Select in, the same out
    return stmt if owner is None else stmt.where(ImageRow.owner == owner)


def _visible(row: ImageRow, owner: str | None) -> bool:
    return owner is None or row.owner == owner


def _to_trash(path: Path) -> tuple[Path, Path]:
    """Rename ``path`` to ``.deleted-<name>`` beside it: (original, trash)."""
    trash = path.with_name(TRASH_PREFIX + path.name)
    os.replace(path, trash)
    return path, trash
