"""The hashes other tools name model and LoRA files by, computed for local files and kept on disk.

One read of a file gives:

* ``sha256``: of the whole file. A1111's ``Model hash`` and Fooocus's ``base_model_hash`` /
  LoRA hashes are its first 10 hex digits (Civitai's "AutoV2"); InvokeAI's ``sha256:`` the whole.
* ``tensors``: sha256 of a ``.safetensors`` file after its header (the kohya-ss "addnet" hash):
  A1111's ``Lora hashes`` are its first 12 hex digits (Civitai's "AutoV3"), SwarmUI's ``0x...``
  the whole; editing a file's metadata header does not change it.
* ``autov1``: sha256 of 64 KiB at 1 MiB, 8 hex digits (A1111 before 2023: "Model hash" of 8).

``HashCache`` keeps them by path, size and mtime in a JSON file (``--cache-dir``/file-hashes.json),
so each version of a multi-GB checkpoint is read once, ever. InvokeAI 4+ names files by BLAKE3,
which the standard library has not: such hashes are not matched (names still are).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class FileHashes:
    sha256: str
    tensors: str = ""          # "" for a file that is not safetensors
    autov1: str = ""

    def matches(self, digest: str) -> bool:
        """Whether ``digest`` (as a tool wrote it: any case, ``0x``/``sha256:`` prefixed, cut to 8, 10, 12
        or 64 hex digits) names this file."""
        clean = normalise(digest)
        if len(clean) < 8:
            return False
        if len(clean) == 8 and self.autov1 == clean:
            return True
        return self.sha256.startswith(clean) or (bool(self.tensors) and self.tensors.startswith(clean))


def normalise(digest: str) -> str:
    """``"0xABC..."``, ``"sha256:abc..."`` -> ``"abc..."``; a BLAKE3 or other hash -> ""."""
    text = (digest or "").strip().lower()
    for prefix in ("0x", "sha256:"):
        text = text.removeprefix(prefix)
    return text if text and all(c in "0123456789abcdef" for c in text) else ""


def compute(path: Path) -> FileHashes:
    """All three hashes of ``path`` in one pass over the file."""
    whole, tensors = hashlib.sha256(), hashlib.sha256()
    with open(path, "rb") as handle:
        head = handle.read(8)
        header = struct.unpack("<Q", head)[0] if len(head) == 8 and path.suffix == ".safetensors" else None
        skip = 8 + header if header is not None and header < os.fstat(handle.fileno()).st_size else None
        whole.update(head)
        position = len(head)
        while block := handle.read(BLOCK):
            whole.update(block)
            if skip is not None and position + len(block) > skip:
                tensors.update(block[max(0, skip - position):])
            position += len(block)
        handle.seek(0x100000)
        autov1 = hashlib.sha256(handle.read(0x10000)).hexdigest()[:8]
    return FileHashes(whole.hexdigest(), tensors.hexdigest() if skip is not None else "", autov1)


class HashCache:
    """``of(path)``: the file's hashes, computed once per (size, mtime) and kept in ``store`` (a JSON
    file; None keeps them in memory only)."""

    def __init__(self, store: Path | None = None) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = {}
        if store is not None and store.is_file():
            try:
                loaded = json.loads(store.read_text(encoding="utf-8"))
                self._entries = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._entries = {}

    def cached(self, path: Path) -> FileHashes | None:
        """The hashes of ``path`` if this version of it was hashed before (never reads the file)."""
        try:
            stat = path.stat()
        except OSError:
            return None
        entry = self._entries.get(str(path))
        if isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            return FileHashes(entry.get("sha256", ""), entry.get("tensors", ""), entry.get("autov1", ""))
        return None

    def of(self, path: Path) -> FileHashes:
        found = self.cached(path)
        if found is not None:
            return found
        stat = path.stat()
        hashes = compute(path)
        with self._lock:
            self._entries[str(path)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, **asdict(hashes)}
            self._save()
        return hashes

    def _save(self) -> None:
        if self._store is None:
            return
        try:
            self._store.parent.mkdir(parents=True, exist_ok=True)
            temp = self._store.with_name(f".{self._store.name}.{os.getpid()}.tmp")
            temp.write_text(json.dumps(self._entries, indent=0), encoding="utf-8")
            os.replace(temp, self._store)
        except OSError:
            pass                    # a cache that cannot be written is only slower next time
