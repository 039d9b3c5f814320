"""Export: a zip of gallery images with everything needed to read and re-make them.

``images/<id>-<name>.png`` (the file as it is, metadata included), ``images/<id>-<name>.txt`` (its
infotext), ``inputs/<sha256>.png`` (each stored input the images' requests read, once) and
``metadata.json`` (every record, its exact request included). The requests refer to their inputs
as ``inputs/<sha256>.png``, relative to the outputs folder; in the zip that is relative to its
root, so an unpacked zip is an outputs folder whose rows can be made again. Each entry lists its
``inputs``; a missing image file (``"file": null``) or input (``missing_inputs``) is listed, not
fatal. The zip is written under a temporary name, then renamed.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from studio.gallery.files import TEMP_PREFIX

if TYPE_CHECKING:
    from studio.gallery.store import GalleryStore


def export_zip(store: GalleryStore, image_ids: Iterable[int], destination: Path | str, *,
               owner: str | None = None) -> Path:
    """A zip of the selected images, their stored inputs, ``metadata.json`` (every record) and one
    ``<name>.txt`` infotext per image (see the module doc). Missing files are listed, not fatal."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    records = [r for r in (store.get(i, owner=owner) for i in image_ids) if r is not None]
    uses = store.inputs_of(r.id for r in records)
    packed: set[str] = set()
    tmp = destination.with_name(TEMP_PREFIX + destination.name)
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        meta = []
        for record in records:
            entry = record.to_dict()
            if owner is not None:                # public mode: no server paths leave the studio
                entry["path"] = Path(record.path).name
            name = f"{record.id:06d}-{Path(record.path).name}"
            if Path(record.path).is_file():
                archive.write(record.path, f"images/{name}")
                entry["file"] = f"images/{name}"
            else:
                entry["file"] = None
            if record.infotext:
                archive.writestr(f"images/{Path(name).stem}.txt", record.infotext)
            refs = uses.get(record.id, ())
            for ref in refs:
                if ref not in packed and (store.outputs_dir / ref).is_file():
                    archive.write(store.outputs_dir / ref, ref)
                    packed.add(ref)
            entry["inputs"] = [ref for ref in refs if ref in packed]
            entry["missing_inputs"] = [ref for ref in refs if ref not in packed]
            meta.append(entry)
        archive.writestr("metadata.json", json.dumps(meta, ensure_ascii=False, indent=1))
    os.replace(tmp, destination)
    return destination
