"""Importing an image a user hands in (PNG Info's "Import into gallery", ``store.import_image``).

* The file is checked first (``imagefile.open_image``): an empty file, a text file, a cut-off or
  oversized image raises ``InvalidRequest`` naming it, and nothing is copied or recorded.
* Content already in the gallery (same sha256 as a row whose file is there) is not copied again:
  the result names that row (``already=True``), tags given are added to it.
* Otherwise a file outside outputs is copied into ``outputs/imported/`` under a free name
  (``x.png``, ``x-1.png``, ...: held by neither a file nor a row whose file is missing) and
  recorded from its own metadata; a file already under outputs is recorded where it lies.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from studio.gallery.pnginfo import read_image_info
from studio.gallery.files import TEMP_PREFIX, sha256_file
from studio.gallery.store import GalleryStore

IMPORTED_FOLDER = "imported"


@dataclass(frozen=True, slots=True)
class ImportResult:
    image_id: int
    already: bool          # the same content was in the gallery: nothing copied, no new row
    name: str              # the file as the user knows it

    @property
    def message(self) -> str:
        if self.already:
            return f"{self.name} is already in the gallery as #{self.image_id} (same content); nothing copied."
        return f"In the gallery as #{self.image_id}."


def import_image(store: GalleryStore, path: Path | str, *, tags: Sequence[str] = (),
                 name: str | None = None) -> ImportResult:
    """Bring the image at ``path`` into the gallery (see the module doc). ``name``: the file as the
    user knows it, for messages (default: its base name; a Gradio upload keeps the user's name)."""
    source = Path(path)
    name = name or source.name
    read_image_info(source, name)                 # raises InvalidRequest before anything is written
    source = source.resolve()
    digest = sha256_file(source)
    with store.lock:                              # one check-then-add at a time: no twin rows
        for image_id in store.ids_with_sha256(digest):
            record = store.get(image_id)
            if record is not None and Path(record.path).is_file():
                if tags:
                    store.add_tags(image_id, tags)
                return ImportResult(image_id, True, name)
        stored = store.stored_path(source)
        if stored != str(source):                             # already under outputs: record it there
            image_id = store._id_for_path(stored)  # noqa: SLF001 - a row for this very file
            if image_id is None:
                image_id = store.reimport(source)
            if tags:
                store.add_tags(image_id, tags)
            return ImportResult(image_id, False, name)
        target = _copy_in(store, source)
        try:
            image = store._new_from_file(target, name)  # noqa: SLF001 - the store's own reader
            if tags:
                image = dataclasses.replace(image, tags=tuple(tags))
            return ImportResult(store.add(image), False, name)
        except BaseException:
            target.unlink(missing_ok=True)
            raise


def _copy_in(store: GalleryStore, source: Path) -> Path:
    folder = store.outputs_dir / IMPORTED_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    n = 1
    while target.exists() or store._id_for_path(store.stored_path(target)) is not None:  # noqa: SLF001
        target = folder / f"{source.stem}-{n}{source.suffix}"
        n += 1
    tmp = folder / f"{TEMP_PREFIX}{target.name}"
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target
