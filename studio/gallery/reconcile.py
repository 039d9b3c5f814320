"""Reconcile: make rows and files agree, whatever happened while the studio was not looking.

* rows whose file is gone get ``missing = True`` (and lose it when the file comes back);
* image files under outputs with no row are imported from their own metadata (``new_from_file``:
  studio JSON, A1111, Fooocus, ComfyUI; none at all still makes a row); a file that is not a whole
  image is skipped, its reason in ``ReconcileReport.errors``;
* a ``.deleted-*`` file left by an interrupted delete is restored if its row is still there, else
  removed; ``.tmp-*`` files older than ``STALE_TEMP_SECONDS`` are removed.

Folders whose mtime has not changed since the last pass (table ``scanned_dirs``) are not listed
again, so a usual start over 100k images costs a few tens of milliseconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, update

from studio.gallery.files import TEMP_PREFIX, TRASH_PREFIX, sha256_file
from studio.gallery.inputs import FOLDER as INPUTS_FOLDER
from studio.gallery.pnginfo import read_image_info
from studio.gallery.records import NewImage, ReconcileReport
from studio.gallery.schema import ImageRow, ScannedDir

if TYPE_CHECKING:
    from studio.gallery.store import GalleryStore

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
STALE_TEMP_SECONDS = 3600


def new_from_file(path: Path, name: str | None = None) -> NewImage:
    """What to record for the image file at ``path``, read from its own metadata (``name``: the file
    as the user knows it, for messages)."""
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


def walk(outputs_dir: Path, known: dict[str, int]) -> tuple[dict[str, set[str]], dict[str, int], list[Path], list[Path]]:
    """Folders under outputs. A folder whose mtime equals the one recorded in ``known`` is not
    listed (no file came or went); its known sub-folders are still visited. Returns the image
    files of each listed folder, the mtime to record per folder seen (-1: "look again next
    time", for folders changed in the last 2 s, whose mtime may not tell a later change),
    interrupted deletes and temp files. Plain strings: at 100k files this is the cost of opening."""
    root = str(outputs_dir)
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


def rows_in(conn, folders: Iterable[str]) -> dict[str, tuple[int, bool]]:  # noqa: ANN001
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


def reconcile(store: GalleryStore, *, full: bool = False) -> ReconcileReport:
    """Make rows and files agree (see the module doc). Safe to run at any time. Folders
    unchanged since the last pass are skipped unless ``full``."""
    started = time.perf_counter()
    errors: list[str] = []
    with store.lock:
        with store.engine.connect() as conn:
            known = {} if full else dict(conn.exec_driver_sql("SELECT path, mtime_ns FROM scanned_dirs").all())
        listed, seen, trash, temps = walk(store.outputs_dir, known)
        vanished = [rel for rel in known if rel not in seen]
        with store.engine.connect() as conn:
            if full or not known:
                rows = {p: (i, bool(m)) for i, p, m in
                        conn.exec_driver_sql("SELECT id, path, missing FROM images").all()}
            else:
                rows = rows_in(conn, [*listed, *vanished])
                rows.update({p: (i, bool(m)) for i, p, m in conn.exec_driver_sql(
                    "SELECT id, path, missing FROM images WHERE path >= '/' AND path < '0'").all()})
        files = set().union(*listed.values()) if listed else set()
        cleaned = 0
        for item in trash:        # a delete that stopped half-way: its row decides
            original = item.with_name(item.name[len(TRASH_PREFIX):])
            stored = store.stored_path(original)
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
                with store._writing() as session:  # noqa: SLF001 - the store's transaction
                    session.execute(update(ImageRow).where(ImageRow.id.in_(ids[i:i + 500])).values(missing=flag))
        imported = 0
        for stored in sorted(files - rows.keys()):
            try:
                store.add(new_from_file(store.outputs_dir / stored))
                imported += 1
            except Exception as err:  # noqa: BLE001 - one unreadable file must not stop the pass
                errors.append(f"{stored}: {err}")
                seen[stored.rpartition("/")[0]] = -1
        with store._writing() as session:  # noqa: SLF001 - the store's transaction
            session.execute(delete(ScannedDir))
            if seen:
                session.execute(insert(ScannedDir), [{"path": p, "mtime_ns": m} for p, m in seen.items()])
    return ReconcileReport(len(gone), len(back), imported, cleaned, tuple(errors),
                           time.perf_counter() - started, len(listed))
