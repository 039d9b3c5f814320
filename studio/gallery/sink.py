"""Image sinks: where ``Studio.generate`` puts finished images (the ``ImageSink`` protocol).

``GallerySink`` (the studio's): every PNG written atomically with A1111 "parameters" and the
exact request as JSON ("studio" chunk), then one gallery transaction records the batch. If a
file cannot be written, or the transaction fails, the batch's files are removed: neither a row
nor a file stays.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from pathlib import Path

from studio.errors import StorageError
from studio.gallery.files import encode_png, sha256_bytes, sha256_file, write_atomic
from studio.gallery.infotext import format_infotext
from studio.gallery.inputs import InputStore
from studio.gallery.store import GalleryStore, NewImage
from studio.requests import GenerationRequest
from studio.results import SavedImage


class ModelFingerprints:
    """Which exact weights a model id meant: the hub snapshot's commit, or a single file's
    sha256 (A1111's "Model hash" is its first 10 hex digits). Hashing a multi-GB checkpoint
    takes seconds, once per file version (size + mtime) per process."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()

    def __call__(self, entry) -> tuple[str, str]:  # noqa: ANN001 - ModelEntry
        spec = entry.spec
        try:
            if spec.kind == "hub":
                return spec.source, _hub_revision(spec.source)
            if spec.kind == "single_file":
                return spec.source, self._file_hash(Path(spec.source))
            if spec.kind == "builtin":
                return spec.source, "builtin"
        except OSError:
            pass
        return spec.source, ""

    def _file_hash(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = sha256_file(path)
            return self._cache[key]


def _hub_revision(repo_id: str) -> str:
    from huggingface_hub import constants

    ref = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / "main"
    return ref.read_text(encoding="utf-8").strip() if ref.is_file() else ""


class GallerySink:
    """Files + gallery rows. ``save`` returns ``SavedImage`` with ``image_id`` filled."""

    def __init__(self, store: GalleryStore, fingerprints: ModelFingerprints | None = None) -> None:
        self.store = store
        self.outputs_dir = store.outputs_dir
        self.inputs: InputStore = store.inputs
        self._fingerprints = fingerprints or ModelFingerprints()
        self._names = threading.Lock()
        self._counters: dict[Path, int] = {}

    @classmethod
    def open(cls, outputs_dir: Path, db_path: Path | None = None) -> GallerySink:
        """The studio's sink: opens (migrates, reconciles) ``<outputs_dir>/gallery.db``."""
        return cls(GalleryStore(Path(outputs_dir), db_path))

    def _claim(self, data: bytes, task: str, seed: int) -> Path:
        """Write ``data`` under the next free ``<task>/<day>/<NNNNN>-<seed>.png`` (never overwriting)."""
        day = self.outputs_dir / task / datetime.now().strftime("%Y-%m-%d")
        try:
            with self._names:
                if day not in self._counters:
                    day.mkdir(parents=True, exist_ok=True)
                    numbers = [int(n.split("-", 1)[0]) for n in os.listdir(day) if n.split("-", 1)[0].isdigit()]
                    self._counters[day] = max(numbers, default=0)
                while True:
                    self._counters[day] += 1
                    path = day / f"{self._counters[day]:05d}-{seed}.png"
                    try:
                        return write_atomic(data, path, exclusive=True)
                    except FileExistsError:
                        if path.exists():
                            continue        # the name is taken: the next number
                        raise
        except OSError as err:   # disk full, permission lost, a file where the folder was: the user's to fix
            raise StorageError.cannot_write(day, err, "These images were not saved; fix that folder (or free some "
                                                      "space) and generate again.") from err

    def save(self, request: GenerationRequest, images: list, seeds: list[int], *, entry,
             timings: dict[str, float], owner: str | None = None) -> list[SavedImage]:
        source, revision = self._fingerprints(entry)
        extra = {"Model hash": revision[:10]} if entry.spec.kind == "single_file" and revision else None
        encoded = []
        for image, seed in zip(images, seeds, strict=True):    # the slow part, outside the lock
            one = request.replace(seed=seed, batch_size=1, batch_count=1)
            text = format_infotext(one, seed, model_label=entry.id, extra=extra)
            encoded.append((one, text, encode_png(image, {"parameters": text, "studio": one.to_json()})))
        written: list[Path] = []
        pending: list[tuple[NewImage, str]] = []
        with self.store.lock:          # a reconcile pass never sees a file before its row is decided
            try:
                for one, text, data in encoded:
                    path = self._claim(data, request.task.value, one.seed)
                    written.append(path)
                    pending.append((NewImage.from_request(one, path=path, sha256=sha256_bytes(data), infotext=text,
                                                          model_source=source, model_revision=revision,
                                                          timings=timings, owner=owner), text))
                ids = self.store.add_many([new for new, _ in pending])
            except BaseException:
                for path in written:
                    path.unlink(missing_ok=True)
                raise
        return [SavedImage(str(new.path), new.seed, image_id, text)
                for (new, text), image_id in zip(pending, ids, strict=True)]
