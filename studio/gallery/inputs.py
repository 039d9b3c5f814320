"""Stored inputs: every image a request reads, kept once, content-addressed, in the outputs folder.

``outputs/inputs/<sha256>.png`` (the sha256 of the file's own bytes): init images, masks, control
images and their maps, IP-Adapter images, references. They are written before the run, and the
resolved request (so the gallery row and the PNG's metadata) refers to them as
``inputs/<sha256>.png``, relative to the outputs folder. An upload may vanish from Gradio's temp
folder; a row can still be made again.

Storing an input that is already there touches it (its mtime says when a run last stored it):
the gallery keeps an input that no row uses while a run may still be using it (see
``GalleryStore.delete`` and ``studio.gallery.reconcile``). Table ``image_inputs`` says which row
uses which input.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from studio.gallery.files import sha256_bytes, write_atomic
from studio.gallery.imagefile import open_image
from studio.requests import ControlUnit, GenerationRequest

FOLDER = "inputs"
REF = re.compile(rf"{FOLDER}/[0-9a-f]{{64}}\.png")
MapMaker = Callable[[ControlUnit, Image.Image], "Image.Image | None"]


def is_ref(ref: str) -> bool:
    """``inputs/<64 hex digits>.png``: a stored input's reference, and nothing else (no other
    folder, no ``..``), so a reference read from a file can never name another path."""
    return isinstance(ref, str) and REF.fullmatch(ref) is not None


def refs_of(request: GenerationRequest) -> tuple[str, ...]:
    """The stored inputs ``request`` reads, each once, sorted (other image paths left out)."""
    return tuple(sorted({ref for ref in request.input_images.values() if is_ref(ref)}))


def _field_of(where: str) -> str:
    """``controls.0.image`` -> ``controls`` (the request field an error should name)."""
    return where.split(".", 1)[0]


class InputStore:
    def __init__(self, outputs_dir: Path) -> None:
        self.outputs_dir = Path(outputs_dir)
        self.folder = self.outputs_dir / FOLDER
        self._runs: Counter[str] = Counter()        # inputs a run in this process reads now
        self._runs_lock = threading.Lock()

    # -- runs in flight -------------------------------------------------------------------------
    @contextmanager
    def using(self, refs: Iterable[str]) -> Iterator[None]:
        """Held around a run: delete and reconcile leave these inputs alone until it ends, even
        when the rows that used them (an earlier batch, the original of a re-generate) go."""
        refs = [ref for ref in set(refs) if is_ref(ref)]
        with self._runs_lock:
            self._runs.update(refs)
        try:
            yield
        finally:
            with self._runs_lock:
                self._runs.subtract(refs)
                self._runs += Counter()              # drop the zeros

    def in_use(self, ref: str) -> bool:
        with self._runs_lock:
            return self._runs[ref] > 0

    # -- references <-> files -------------------------------------------------------------------
    def is_stored(self, ref: str) -> bool:
        return is_ref(ref) and (self.outputs_dir / ref).is_file()

    def path(self, ref: str) -> Path:
        """Where an input reference lies: stored refs are relative to the outputs folder."""
        return self.outputs_dir / ref if ref.startswith(f"{FOLDER}/") else Path(ref).expanduser()

    def open(self, ref: str, field: str, name: str | None = None) -> Image.Image:
        """The image an input reference points to, checked (``InvalidRequest`` names ``field``)."""
        with open_image(self.path(ref), name or Path(ref).name, field=field) as image:
            image.load()
            return image.copy()

    def refs(self) -> set[str]:
        """Every stored input on disk, as references."""
        if not self.folder.is_dir():
            return set()
        return {ref for ref in (f"{FOLDER}/{name}" for name in os.listdir(self.folder)) if is_ref(ref)}

    # -- storing --------------------------------------------------------------------------------
    @staticmethod
    def _encode(image: Image.Image) -> tuple[str, bytes]:
        """(reference, PNG bytes) of ``image``: no metadata, so equal pixels give equal files."""
        if image.mode not in ("RGB", "RGBA", "L"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
        return f"{FOLDER}/{sha256_bytes(data)}.png", data

    def _write(self, ref: str, data: bytes | None) -> None:
        """Write ``data`` as ``ref`` unless it is there already; if it is, touch it (stored again now)."""
        target = self.outputs_dir / ref
        if target.is_file():
            try:
                os.utime(target)
            except OSError:
                pass
            return
        if data is not None:
            try:
                write_atomic(data, target, exclusive=True)
            except FileExistsError:
                pass                                 # another request stored the same image just now

    def put(self, image: Image.Image) -> str:
        """Store ``image`` once; its reference ``inputs/<sha256>.png``."""
        ref, data = self._encode(image)
        self._write(ref, data)
        return ref

    def store_request(self, request: GenerationRequest, make_map: MapMaker | None = None,
                      check: Callable[[dict[str, Image.Image]], None] | None = None) -> GenerationRequest:
        """The request with every input image stored, and each control unit's map made
        (``make_map``: its preprocessor; ``None`` when the image is the map) and stored. Every
        image is read and checked first (``check`` sees them by where they sit, e.g. ``mask_image``),
        then the files are written: a bad input writes nothing."""
        opened: dict[str, Image.Image] = {}
        by_where: dict[str, Image.Image] = {}
        mapping: dict[str, str] = {}
        files: dict[str, bytes] = {}
        for where, ref in request.input_images.items():
            if ref not in mapping and self.is_stored(ref):
                mapping[ref] = ref
            if ref not in opened and (check is not None or ref != mapping.get(ref)):
                opened[ref] = self.open(ref, _field_of(where))
            if ref not in mapping:
                mapping[ref], files[mapping[ref]] = self._encode(opened[ref])
            if ref in opened:
                by_where[where] = opened[ref]
        if check is not None:
            check(by_where)
        units = []
        for unit in request.controls:
            if make_map is not None and not unit.map:
                source = opened.get(unit.image) or self.open(mapping.get(unit.image, unit.image), "controls")
                made = make_map(unit, source)
                if made is not None:
                    ref, files[ref] = self._encode(made)
                    unit = dataclasses.replace(unit, map=ref)
            units.append(unit)
        for ref in {*mapping.values(), *files}:
            self._write(ref, files.get(ref))
        stored = request.replace(controls=tuple(units)) if units else request
        return stored.with_images(mapping) if mapping else stored
