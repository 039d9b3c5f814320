"""Which of a gallery row's model and LoRAs are here, found by name or by the hash its tool wrote.

A row made elsewhere names its model and LoRAs by that tool's file names and, often, by hash
(A1111 ``Model hash`` / ``Lora hashes``, Fooocus ``base_model_hash`` and LoRA hashes, Civitai's
AutoV2/AutoV3, SwarmUI's tensor hashes: ``studio.models.filehash``). ``LocalFiles.presence`` looks
for each among the studio's models (``Registry``): first by name (the model id, a LoRA's file stem;
case aside), then by hash against the local single-file checkpoints and LoRAs, so a file renamed
since still counts. ``Presence.line`` is what the Gallery shows per row; ``Presence.apply`` turns
a row's request into one that names the local files; ``Presence.message`` says exactly which file
is missing and where it goes, for re-generate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.models.filehash import HashCache, normalise
from studio.requests import GenerationRequest, LoraSpec


@dataclass(frozen=True, slots=True)
class Found:
    kind: str                 # "model" | "LoRA"
    name: str                 # as the row names it
    digest: str = ""          # the hash its tool wrote
    local: str = ""           # the name the studio knows the file by ("" : not here)
    path: str = ""            # the local file or folder
    by: str = ""              # "name" | "hash"
    reason: str = ""          # why a model the studio knows cannot be used now

    @property
    def present(self) -> bool:
        return bool(self.local) and not self.reason

    def describe(self) -> str:
        named = f"{self.kind} {self.name!r}" + (f" (hash {self.digest})" if self.digest else "")
        if self.present:
            how = f"as {Path(self.path).name}" + (", by hash" if self.by == "hash" else "")
            return f"{named} present ({how})"
        return f"{named} missing" + (f": {self.reason}" if self.reason else "")


@dataclass(frozen=True, slots=True)
class Presence:
    model: Found | None
    loras: tuple[Found, ...] = ()
    models_dir: str = ""

    @property
    def missing(self) -> tuple[Found, ...]:
        return tuple(f for f in (self.model, *self.loras) if f is not None and not f.present)

    def line(self) -> str:
        """One line for the Gallery: "model present" / "model missing" and each LoRA."""
        parts = [f.describe() for f in (self.model, *self.loras) if f is not None]
        return " · ".join(parts) if parts else "no model named"

    def message(self, image_id: int | None = None) -> str:
        """What re-generating needs and is not here: each file, and the folder it goes in."""
        where = {"model": "checkpoints", "LoRA": "loras"}
        needs = []
        for f in self.missing:
            folder = str(Path(self.models_dir) / where[f.kind]) if self.models_dir else f"models/{where[f.kind]}"
            hashed = f" (hash {f.digest}, as its tool named the file)" if f.digest else ""
            needs.append(f"{f.kind} {f.name!r}{hashed}" + (f" cannot be used: {f.reason}" if f.reason
                                                           else f" is not in {folder}"))
        head = f"re-generating #{image_id}" if image_id is not None else "re-generating it"
        return f"{head} needs what is not here: " + "; ".join(needs) + ". Put the file(s) there, then try again."

    def apply(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` naming the local files (a model or LoRA found by hash under another name)."""
        changes: dict[str, Any] = {}
        if self.model is not None and self.model.present and self.model.local != request.model_id:
            changes["model_id"] = self.model.local
        local = {f.name: f.local for f in self.loras if f.present}
        if any(local.get(x.name, x.name) != x.name for x in request.loras):
            changes["loras"] = tuple(dataclasses.replace(x, name=local.get(x.name, x.name)) for x in request.loras)
        return request.replace(**changes) if changes else request


class LocalFiles:
    """Looks up models and LoRAs in ``registry`` (``studio.models.registry.Registry``), hashing local
    files through ``hashes`` only when a name does not match."""

    def __init__(self, registry, hashes: HashCache | None = None, models_dir: Path | str = "") -> None:  # noqa: ANN001
        self.registry = registry
        self.hashes = hashes or HashCache()
        self.models_dir = str(models_dir)

    def presence(self, model_id: str, model_hash: str = "", loras: tuple[LoraSpec, ...] = (),
                 lora_hashes: tuple[tuple[str, str], ...] = ()) -> Presence:
        digests = dict(lora_hashes)
        model = self._model(model_id, model_hash) if model_id or model_hash else None
        files = [info.path for info in self.registry.lora_library.scan()]   # usable or not: "present" is the file
        return Presence(model, tuple(self._lora(x.name, digests.get(x.name, ""), files) for x in loras),
                        self.models_dir)

    def of_record(self, record) -> Presence:  # noqa: ANN001 - records.ImageRecord
        """A gallery row's presence: its model hash is ``model_revision`` when that is a file hash its
        tool wrote (a hub commit is not matched against files)."""
        digest = record.model_revision if record.source != "studio" else ""
        return self.presence(record.model_id, digest, record.loras, record.lora_hashes)

    def _model(self, model_id: str, digest: str) -> Found:
        entries = self.registry.entries()
        for entry in entries:                                   # by name: exactly, then case aside
            if entry.id == model_id or entry.id.lower() == model_id.lower():
                return Found("model", model_id, digest, entry.id, entry.where, "name",
                             "" if entry.available else entry.reason)
        if normalise(digest):
            for entry in entries:
                if entry.spec.kind == "single_file" and self._matches(Path(entry.spec.source), digest):
                    return Found("model", model_id, digest, entry.id, entry.where, "hash",
                                 "" if entry.available else entry.reason)
        return Found("model", model_id, digest)

    def _lora(self, name: str, digest: str, files: list[Path]) -> Found:
        for path in files:
            if path.stem == name or path.stem.lower() == name.lower():
                return Found("LoRA", name, digest, path.stem, str(path), "name")
        if normalise(digest):
            for path in files:
                if self._matches(path, digest):
                    return Found("LoRA", name, digest, path.stem, str(path), "hash")
        return Found("LoRA", name, digest)

    def _matches(self, path: Path, digest: str) -> bool:
        try:
            return self.hashes.of(path).matches(digest)
        except OSError:
            return False
