"""Reconcile: make rows and files agree, whatever happened while the studio was not looking.

* rows whose file is gone get ``missing = True`` (and lose it when the file comes back);
* image files under outputs with no row are imported from their own metadata (``new_from_file``:
  studio JSON or any tool ``readers`` knows; none at all still makes a row); a file that is not a whole
  image is skipped, its reason in ``ReconcileReport.errors``;
* a ``.deleted-*`` file left by an interrupted delete is restored if its row is still there, else
  removed; ``.tmp-*`` files older than ``STALE_TEMP_SECONDS`` are removed.
* stored inputs (``outputs/inputs/``, ``settle_inputs``): one that no row uses and that was last
  stored over ``STALE_TEMP_SECONDS`` ago is removed (a younger one may belong to a run that has
  not written its row yet); a row whose input file is gone is reported
  (``ReconcileReport.missing_inputs``), not changed. Leftovers of deletes and writes there are
  settled as above.

Folders whose mtime has not changed since the last pass (table ``scanned_dirs``) are not listed
again, so a usual start over 100k images costs a few tens of milliseconds. The inputs folder has
its own entry there; it is looked at again while it holds young unused inputs or rows miss one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, update

from studio.gallery.files import TEMP_PREFIX, TRASH_PREFIX, sha256_file
from studio.gallery.inputs import FOLDER as INPUTS_FOLDER
from studio.gallery.inputs import is_ref, refs_of
from studio.gallery.pnginfo import ImageInfo, read_image_info
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
    return new_from_info(info, path, sha256_file(path), created)


def new_from_info(info: ImageInfo, path: Path, sha: str, created: datetime | None) -> NewImage:
    """What to record for an image file at ``path`` (content ``sha``) whose metadata says ``info``.
    A foreign image keeps its tool (``source``), the model hash its tool wrote (``model_revision``)
    and its LoRAs' hashes; an image without parameters is source "import"."""
    if info.request is not None and info.source == "studio":
        request = info.request
        return NewImage.from_request(request, path=path, sha256=sha, infotext=info.infotext,
                                     created_at=created, source="studio") \
            if request.seed is not None and request.width and request.height else \
            NewImage.from_fields(info.fields, path=path, sha256=sha, width=info.width, height=info.height,
                                 infotext=info.infotext, request_json=request.to_json(), created_at=created,
                                 input_refs=refs_of(request))
    request_json = info.request.to_json() if info.request is not None else None
    return NewImage.from_fields(info.fields, path=path, sha256=sha, width=info.width, height=info.height,
                                infotext=info.infotext, request_json=request_json,
                                source=info.source if info.source != "none" else "import", created_at=created,
                                input_refs=refs_of(info.request) if info.request is not None else (),
                                model_revision=info.model_hash, lora_hashes=info.lora_hashes)


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
        inputs = settle_inputs(store, known.pop(INPUTS_FOLDER, None))
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
        if inputs.mtime_ns is not None:
            seen[INPUTS_FOLDER] = inputs.mtime_ns
        with store._writing() as session:  # noqa: SLF001 - the store's transaction
            session.execute(delete(ScannedDir))
            if seen:
                session.execute(insert(ScannedDir), [{"path": p, "mtime_ns": m} for p, m in seen.items()])
    return ReconcileReport(flagged_missing=len(gone), restored=len(back), imported=imported,
                           cleaned=cleaned + inputs.cleaned, errors=tuple(errors),
                           seconds=time.perf_counter() - started, folders_listed=len(listed),
                           inputs_removed=inputs.removed, missing_inputs=inputs.missing)


@dataclass(frozen=True, slots=True)
class InputsSettled:
    mtime_ns: int | None = None       # to record for the inputs folder (-1: look again next time; None: no folder)
    removed: int = 0                  # unused inputs removed
    cleaned: int = 0                  # leftovers of interrupted deletes and writes removed
    missing: tuple[tuple[int, str], ...] = ()      # (image id, ref) whose input file is gone


def settle_inputs(store: GalleryStore, recorded: int | None = None) -> InputsSettled:
    """Stored inputs and the rows that use them agree as far as files can (see the module doc).
    ``recorded``: the folder's mtime at the last pass; if it is unchanged, nothing is listed."""
    folder = store.outputs_dir / INPUTS_FOLDER
    try:
        mtime = os.stat(folder).st_mtime_ns
    except OSError:
        mtime = None
    if mtime is not None and mtime == recorded:
        return InputsSettled(mtime)
    names = os.listdir(folder) if mtime is not None else []
    present = {ref for ref in (f"{INPUTS_FOLDER}/{name}" for name in names) if is_ref(ref)}
    with store.engine.connect() as conn:
        used = set(conn.exec_driver_sql("SELECT DISTINCT ref FROM image_inputs").scalars())
    removed = cleaned = 0
    for name in (n for n in names if n.startswith(TRASH_PREFIX)):     # a delete that stopped half-way
        ref = f"{INPUTS_FOLDER}/{name[len(TRASH_PREFIX):]}"
        if ref in used and ref not in present:                       # its row is still there
            os.replace(folder / name, store.outputs_dir / ref)
            present.add(ref)
        else:
            (folder / name).unlink(missing_ok=True)
            cleaned += 1
    young = False                     # a run may be writing it, or have stored it and not yet written its row
    for name in (n for n in names if n.startswith(TEMP_PREFIX)):
        if _remove_if_stale(folder / name):
            cleaned += 1
        else:
            young = True
    for ref in sorted(present - used):
        if not store.inputs.in_use(ref) and _remove_if_stale(store.outputs_dir / ref):
            removed += 1
        else:
            young = True
    missing: tuple[tuple[int, str], ...] = ()
    if used - present:                # reported at every pass until the file comes back or its rows go
        gone = sorted(used - present)
        with store.engine.connect() as conn:
            missing = tuple(
                (image_id, ref) for i in range(0, len(gone), 500) for image_id, ref in conn.exec_driver_sql(
                    f"SELECT image_id, ref FROM image_inputs WHERE ref IN ({','.join('?' * len(gone[i:i + 500]))}) "
                    "ORDER BY image_id, ref", tuple(gone[i:i + 500])).all())
    try:
        mtime = os.stat(folder).st_mtime_ns
    except OSError:
        return InputsSettled(None, removed, cleaned, missing)
    look_again = young or bool(missing) or time.time_ns() - mtime < 2_000_000_000
    return InputsSettled(-1 if look_again else mtime, removed, cleaned, missing)


def _remove_if_stale(path: Path) -> bool:
    """Remove ``path`` if it was last written over ``STALE_TEMP_SECONDS`` ago; whether it is gone."""
    try:
        if time.time() - path.stat().st_mtime <= STALE_TEMP_SECONDS:
            return False
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True
