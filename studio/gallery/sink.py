"""FolderSink: the foundation's image sink — PNG files with A1111 parameters, no database.

The gallery store (``studio/gallery/store.py``) replaces it with files + SQLite rows.
"""

from __future__ import annotations

from pathlib import Path

from studio.gallery.files import next_image_path, write_png
from studio.gallery.infotext import format_infotext
from studio.requests import GenerationRequest, SavedImage


class FolderSink:
    def __init__(self, outputs_dir: Path) -> None:
        self.outputs_dir = Path(outputs_dir)

    def save(self, request: GenerationRequest, images: list, seeds: list[int], *, entry,
             timings: dict[str, float]) -> list[SavedImage]:
        written: list[Path] = []
        saved = []
        try:
            for image, seed in zip(images, seeds, strict=True):
                one = request.replace(seed=seed, batch_size=1, batch_count=1)
                text = format_infotext(one, seed, model_label=entry.id)
                path = next_image_path(self.outputs_dir / request.task.value, seed)
                write_png(image, path, {"parameters": text, "studio": one.to_json()})
                written.append(path)
                saved.append(SavedImage(str(path), seed, None, text))
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return saved
