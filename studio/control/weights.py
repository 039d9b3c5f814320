"""Where a detector's weights are: the models folder, the hub cache, or a download (online only).

``locate(weights, models_dir, offline)`` returns a folder holding the files. Looked for, in order:
``<models_dir>/preprocessors/<folder>/`` (the user's copy), the local Hugging Face cache, then,
unless offline, a download of only the files named. Offline with neither, ``ModelUnavailable``
says exactly what to download and where to put it. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studio.errors import ModelUnavailable


@dataclass(frozen=True, slots=True)
class Weights:
    """A detector's files: all of ``files``, and the first of ``one_of`` that exists (a model's
    weights come as safetensors or, in older repos, a .bin)."""

    repo: str                          # hub repo id
    folder: str                        # models/preprocessors/<folder>/
    label: str                         # what it is, for messages
    files: tuple[str, ...]
    one_of: tuple[str, ...] = ()

    def download_command(self) -> str:
        """What to run on a machine with network. Big repos (lllyasviel/Annotators): only the files."""
        names = "" if self.one_of else " " + " ".join(self.files)
        return f"hf download {self.repo}{names}"

    def file_list(self) -> str:
        return ", ".join(self.files) + (f" and one of {' / '.join(self.one_of)}" if self.one_of else "")


def _complete(folder: Path, weights: Weights) -> bool:
    return all((folder / f).is_file() for f in weights.files) and \
        (not weights.one_of or any((folder / f).is_file() for f in weights.one_of))


def _cached(weights: Weights) -> Path | None:
    """The hub cache's snapshot folder holding every file, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:                                      # pragma: no cover - huggingface_hub is a pin
        return None
    found = [try_to_load_from_cache(weights.repo, name) for name in weights.files]
    if not all(isinstance(f, str) for f in found):
        return None
    folder = Path(found[0]).parent
    return folder if _complete(folder, weights) else None


def _download(weights: Weights) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    paths = [Path(hf_hub_download(weights.repo, name)) for name in weights.files]
    for name in weights.one_of:
        try:
            paths.append(Path(hf_hub_download(weights.repo, name)))
            break
        except EntryNotFoundError:
            continue
    return paths[0].parent


def locate(weights: Weights, models_dir: Path, *, offline: bool) -> Path:
    """A folder with the weights' files (see the module's docstring)."""
    local = Path(models_dir) / "preprocessors" / weights.folder
    if _complete(local, weights):
        return local
    cached = _cached(weights)
    if cached is not None:
        return cached
    where = f"{local}{'/' if not str(local).endswith('/') else ''}"
    if offline:
        raise ModelUnavailable(
            f"{weights.label} ({weights.repo}) is not downloaded and the studio is offline. On a machine with "
            f"network run `{weights.download_command()}` (same HF_HOME), or put {weights.file_list()} in {where}")
    try:
        return _download(weights)
    except Exception as err:  # noqa: BLE001 - any hub failure: say what to do instead
        raise ModelUnavailable(
            f"{weights.label} ({weights.repo}) could not be downloaded ({type(err).__name__}: {err}). "
            f"Run `{weights.download_command()}`, or put {weights.file_list()} in {where}") from err
