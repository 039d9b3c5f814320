"""The LoRA library: every LoRA in ``models/loras/`` (subfolders too), what it is, and finding it.

Scanning reads safetensors headers only (no torch, no weights), cached per file version (size +
mtime). For each file: its family told from the keys (``detect.py``), layout, rank, size, the
metadata kohya and ModelSpec write (``facts.py``), a preview image beside it as A1111 and Forge
keep one, and what is wrong with it, if anything (corrupt, truncated, a pickle, not a LoRA).

A LoRA's **name** is its path under the folder without ``.safetensors`` (``styles/ink``); the bare
file name also finds it when only one file has it (``<lora:ink:1>``, as A1111). A name that is
``owner/repo/weights.safetensors`` and no local file is a Hugging Face hub LoRA: taken from the hub
cache, or downloaded on first use when online. Its **hash** is A1111's (sha256 of the tensor bytes,
after the header, so edited metadata keeps it), cached per file version, and finds a file again
after a rename.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from studio.errors import InvalidRequest, ModelUnavailable
from studio.gallery.files import sha256_file
from studio.loras.detect import detect, family_label
from studio.loras.facts import Facts, read_facts
from studio.models.catalog import Family
from studio.models.header import BadFile, read_header

SUFFIX = ".safetensors"
PICKLES = (".ckpt", ".pt", ".pth", ".bin")
PREVIEWS = tuple(f"{kind}{ext}" for kind in ("", ".preview") for ext in (".png", ".jpg", ".jpeg", ".webp"))
RE_HUB = re.compile(r"^([A-Za-z0-9][\w.-]*)/([\w.-]+)/((?:[\w.-]+/)*[\w.-]+\.safetensors)$")
PICKLE_PROBLEM = ("a pickle file ({suffix}): refused, since loading one can run any code it carries. "
                  "Use the .safetensors version of this LoRA (most are published as one), or convert it")


@dataclass(frozen=True, slots=True)
class LoraInfo:
    name: str
    path: Path
    size: int = 0
    families: tuple[str, ...] = ()       # candidates told from the keys (and widths, metadata); () unknown
    family_source: str = ""
    layout: str = ""
    rank: int | None = None
    facts: Facts = field(default_factory=Facts)
    preview: Path | None = None
    problem: str = ""                    # why it cannot be used ("" when it can)
    hub: str = ""                        # "owner/repo" for a hub LoRA

    @property
    def family_label(self) -> str:
        return family_label(self.families)

    def fits(self, family: Family) -> tuple[bool, str]:
        """Whether it can be applied to a model of ``family``, and if not, why (a sentence)."""
        if self.problem:
            return False, self.problem
        if not self.families or family.lora_family in self.families:
            return True, "" if self.families else "family unknown from its keys: it may not fit"
        how = "its keys" if self.family_source.startswith("keys") else "its metadata"
        return False, f"a {self.family_label} LoRA (told from {how}); {family.label} models cannot use it"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.path.name, "family": "/".join(self.families) or "unknown",
                "family_label": self.family_label, "family_source": self.family_source, "layout": self.layout,
                "rank": self.rank, "size": self.size, **self.facts.to_dict(),
                "preview": self.preview.name if self.preview else "", "problem": self.problem, "hub": self.hub}


def check_name(name: str) -> str:
    """A LoRA name as typed: stripped; ``InvalidRequest`` for anything that could leave the folder."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("loras", "a LoRA needs a name")
    name = name.strip()
    parts = name.replace("\\", "/").split("/")
    if "\\" in name or "\x00" in name or name.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", name) \
            or any(p in ("", ".", "..") for p in parts):
        raise InvalidRequest("loras", f"{name!r} is not a LoRA name: names are paths inside the LoRA folder "
                                      "(no '..', no absolute paths)")
    return name


def _preview(path: Path) -> Path | None:
    stem = path.with_suffix("")
    for suffix in PREVIEWS:
        candidate = stem.with_name(stem.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def inspect_file(path: Path, name: str, *, hub: str = "") -> LoraInfo:
    """One file, read from its header (never raises for a bad file: ``problem`` says what is wrong)."""
    try:
        size = path.stat().st_size
    except OSError as err:
        return LoraInfo(name, path, problem=f"cannot be read ({err.strerror or err})", hub=hub)
    if path.suffix.lower() in PICKLES:
        return LoraInfo(name, path, size, problem=PICKLE_PROBLEM.format(suffix=path.suffix), hub=hub,
                        preview=_preview(path))
    try:
        header = read_header(path)
    except BadFile as err:
        return LoraInfo(name, path, size, problem=str(err), hub=hub, preview=_preview(path))
    except OSError as err:
        return LoraInfo(name, path, size, problem=f"cannot be read ({err.strerror or err})", hub=hub)
    facts = read_facts(header.metadata, path)
    found = detect(header.shapes, {**header.metadata, **({"sd version": facts.sd_version} if facts.sd_version
                                                          else {})})
    return LoraInfo(name, path, size, found.families, found.source, found.layout, found.rank, facts, _preview(path),
                    found.problem, hub)


class LoraLibrary:
    """``folder``: the models folder's ``loras/``. ``offline``: hub LoRAs come from the cache only.
    ``shown``: how messages name the folder (public mode: ``models/loras``, no server path)."""

    def __init__(self, folder: Path, *, offline: bool = False, hub_cache: Path | None = None,
                 shown: str | None = None) -> None:
        self.folder, self.offline, self.hub_cache = Path(folder), offline, hub_cache
        self.shown = shown or str(self.folder)
        self._lock = threading.Lock()
        self._infos: dict[tuple[str, int, int], LoraInfo] = {}
        self._hashes: dict[tuple[str, int, int], str] = {}

    # -- listing ----------------------------------------------------------------------------------
    def files(self) -> list[Path]:
        """Every LoRA file (and pickle) under the folder, symlinked folders followed once, hidden ones skipped."""
        if not self.folder.is_dir():
            return []
        out, seen = [], set()
        for root, dirs, names in os.walk(self.folder, followlinks=True):
            real = os.path.realpath(root)
            if real in seen:
                dirs[:] = []
                continue
            seen.add(real)
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            out += [Path(root) / n for n in sorted(names)
                    if not n.startswith(".") and n.lower().endswith((SUFFIX, *PICKLES))]
        return out

    def name_of(self, path: Path) -> str:
        rel = path.relative_to(self.folder).as_posix()
        return rel[:-len(SUFFIX)] if rel.lower().endswith(SUFFIX) else rel

    def scan(self) -> list[LoraInfo]:
        """Every LoRA, usable or not, by name."""
        out = []
        for path in self.files():
            key = _version(path)
            with self._lock:
                info = self._infos.get(key) if key else None
            if info is None:
                info = inspect_file(path, self.name_of(path))
                if key:
                    with self._lock:
                        self._infos[key] = info
            out.append(info)
        return sorted(out, key=lambda x: x.name.lower())

    def search(self, query: str = "", family: str = "") -> list[LoraInfo]:
        """By words in the name, title, description, trigger words or tags; and by family."""
        words = (query or "").lower().split()
        out = []
        for info in self.scan():
            if family and family not in info.families:
                continue
            text = " ".join((info.name, info.facts.title, info.facts.description, " ".join(info.facts.trigger_words),
                             " ".join(t for t, _ in info.facts.tags), info.family_label)).lower()
            if all(w in text for w in words):
                out.append(info)
        return out

    # -- finding one ------------------------------------------------------------------------------
    def find(self, name: str) -> LoraInfo:
        """A LoRA by name (see the module doc). ``ModelUnavailable`` when there is none, with what there is."""
        name = check_name(name)
        infos = self.scan()
        bare = name[:-len(SUFFIX)] if name.lower().endswith(SUFFIX) else name
        for info in infos:
            if info.name in (name, bare):
                return info
        by_stem = [i for i in infos if Path(i.name).name == bare]
        if len(by_stem) == 1:
            return by_stem[0]
        if len(by_stem) > 1:
            raise InvalidRequest("loras", f"LoRA {name!r} is ambiguous: {', '.join(i.name for i in by_stem)}; "
                                          "use the name with its folder")
        if RE_HUB.match(name):
            return self._hub(name)
        known = ", ".join(i.name for i in infos) or "none"
        raise ModelUnavailable(f"LoRA {name!r} not found in {self.shown} (found: {known}). Put the .safetensors "
                               "file there, or name a hub LoRA as owner/repo/weights.safetensors.")

    def usable(self, name: str) -> LoraInfo:
        """``find``, refusing a file that cannot be used (``InvalidRequest`` naming the LoRA and why)."""
        info = self.find(name)
        if info.problem:
            raise InvalidRequest("loras", f"LoRA {info.name!r}: {info.problem}")
        return info

    def _hub(self, name: str) -> LoraInfo:
        repo_owner, repo_name, filename = RE_HUB.match(name).groups()
        repo = f"{repo_owner}/{repo_name}"
        from huggingface_hub import try_to_load_from_cache

        cache = str(self.hub_cache) if self.hub_cache else None
        cached = try_to_load_from_cache(repo, filename, cache_dir=cache)
        if isinstance(cached, str):
            return inspect_file(Path(cached), name, hub=repo)
        if self.offline:
            raise ModelUnavailable(f"LoRA {name!r} is a hub LoRA that is not in the Hugging Face cache, and the studio "
                                   f"is offline: run `hf download {repo} {filename}` on a machine with network "
                                   "(same HF_HOME), or start without --offline to download it on first use.")
        from huggingface_hub import hf_hub_download

        try:
            path = hf_hub_download(repo, filename, cache_dir=cache)
        except Exception as err:  # noqa: BLE001 - any hub failure: say which LoRA and why
            raise ModelUnavailable(f"LoRA {name!r} could not be downloaded from the hub: {err}") from err
        return inspect_file(Path(path), name, hub=repo)

    # -- hashes -----------------------------------------------------------------------------------
    def hash(self, info: LoraInfo) -> str:
        """A1111's LoRA hash of the file (64 hex digits): sha256 of everything after the header."""
        key = _version(info.path)
        with self._lock:
            if key in self._hashes:
                return self._hashes[key]
        start = read_header(info.path).data_start
        digest = sha256_file(info.path, start=start)
        if key:
            with self._lock:
                self._hashes[key] = digest
        return digest

    def by_hash(self, short: str) -> LoraInfo | None:
        """The usable local LoRA whose hash starts with ``short`` (12 digits are what infotexts carry)."""
        short = (short or "").lower()
        if len(short) < 8:
            return None
        for info in self.scan():
            if not info.problem and self.hash(info).startswith(short):
                return info
        return None

    def resolve(self, name: str, known_hash: str = "") -> tuple[LoraInfo, str, str]:
        """The file a request's LoRA means -> (info, its full hash, a notice or ""). With ``known_hash``
        (a re-generate, a foreign image) the file with that hash wins over the name: a renamed file is
        found, a changed one is named in the notice."""
        try:
            info = self.usable(name)
        except ModelUnavailable:
            info = None
            if not known_hash:
                raise
        if info is not None:
            digest = self.hash(info)
            if not known_hash or digest.startswith(known_hash):
                return info, digest, ""
        found = self.by_hash(known_hash)
        if found is not None:
            return found, self.hash(found), (f"LoRA {name!r} is now {found.name!r} (found by its hash "
                                             f"{known_hash[:12]})")
        if info is not None:
            return info, digest, (f"LoRA {name!r} has changed since (hash {known_hash[:12]}, now {digest[:12]}): "
                                  "the image will not be the same")
        raise ModelUnavailable(f"LoRA {name!r} (hash {known_hash[:12]}) is not in {self.shown}, by name or by hash. "
                               "Put the file there.")

    def describe(self, spec) -> tuple[object, str]:  # noqa: ANN001 - LoraSpec
        """A LoRA an image names -> (the spec with the local file's name, or as it was; a sentence
        saying which local file it is, found how, or that there is none)."""
        shown = f"{spec.name} {spec.weight:g}" + (f" (hash {spec.hash[:12]})" if spec.hash else "")
        try:
            info, _, note = self.resolve(spec.name, spec.hash)
        except (ModelUnavailable, InvalidRequest):
            return spec, f"{shown}: not in the LoRA folder"
        how = "found by its hash" if note and "now" in note else ("changed since" if note else "")
        return replace(spec, name=info.name), f"{shown}: {info.path.name}" + (f" ({how})" if how else "")


def _version(path: Path) -> tuple[str, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return str(path), stat.st_size, stat.st_mtime_ns
