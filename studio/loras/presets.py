"""Named LoRA mixes, saved in one JSON file in the models folder: ``<models>/lora-presets.json``.

Why the models folder and not the outputs: a preset is made of LoRAs, which live there; it travels
with them (copy the models folder to another machine, or point two studios at one with
``--models-dir``, and the presets come along), while outputs are per run and may be moved or wiped
(``--outputs-dir``). Each entry keeps the LoRA's hash, so a preset still finds a renamed file.
The file is written whole and atomically; a folder that cannot be written is a ``StorageError``
naming it, and a preset file that is not valid JSON is named, never overwritten silently.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

from studio.errors import InvalidRequest, StorageError
from studio.gallery.files import write_atomic
from studio.loras.mix import MixEntry

FILE_NAME = "lora-presets.json"
MAX_NAME = 80


def check_preset_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidRequest("preset", "give the preset a name")
    if len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise InvalidRequest("preset", f"a preset name is one line of at most {MAX_NAME} characters, got {name[:100]!r}")
    return name


class PresetStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise StorageError(f"{self.path} is not a readable preset file ({err.__class__.__name__}); move it "
                               "away to start a new one") from err
        presets = data.get("presets") if isinstance(data, dict) else None
        return presets if isinstance(presets, dict) else {}

    def _write(self, presets: dict[str, dict]) -> None:
        body = json.dumps({"version": 1, "presets": presets}, ensure_ascii=False, indent=1, sort_keys=True)
        try:
            write_atomic(body.encode("utf-8"), self.path)
        except OSError as err:
            raise StorageError.cannot_write(self.path.parent, err, "The preset was not saved.") from err

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._read(), key=str.lower)

    def get(self, name: str) -> tuple[MixEntry, ...]:
        name = check_preset_name(name)
        with self._lock:
            preset = self._read().get(name)
        if preset is None:
            raise InvalidRequest("preset", f"no preset named {name!r}; saved ones: {', '.join(self.names()) or 'none'}")
        try:
            return tuple(MixEntry(str(x["name"]), float(x["weight"]), bool(x.get("on", True)), str(x.get("hash", "")))
                         for x in preset.get("loras", ()))
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidRequest("preset", f"preset {name!r} in {self.path.name} is damaged: {err}") from err

    def save(self, name: str, entries: tuple[MixEntry, ...]) -> None:
        name = check_preset_name(name)
        if not entries:
            raise InvalidRequest("preset", "the mix is empty: add a LoRA first")
        record = {"saved": datetime.now(UTC).isoformat(timespec="seconds"),
                  "loras": [{"name": e.name, "weight": e.weight, "on": e.on, "hash": e.hash} for e in entries]}
        with self._lock:
            presets = self._read()
            presets[name] = record
            self._write(presets)

    def delete(self, name: str) -> bool:
        name = check_preset_name(name)
        with self._lock:
            presets = self._read()
            if presets.pop(name, None) is None:
                return False
            self._write(presets)
        return True
