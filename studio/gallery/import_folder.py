"""Import a folder of images made elsewhere (A1111, Forge, Fooocus, ComfyUI, InvokeAI, SwarmUI,
NovelAI...) into the gallery, every prompt, seed, model and LoRA searchable.

    python -m studio.gallery.import_folder DIR [--outputs-dir OUT] [--link] [--skip-plain] [--tag T]

* Recursive: every ``.png .jpg .jpeg .webp`` under ``DIR`` (dot-named files and folders, and the
  outputs folder itself, are left alone). Folder links are followed once: a link back up the tree
  (a loop) is reported, not walked forever.
* Each file is read once: checked whole (``pnginfo.chunks_of``: a truncated, damaged or bomb-sized
  image, or one with a 10 MB text chunk, is refused by name), hashed, its metadata read by the
  readers (``studio.gallery.readers``). Content already in the gallery (sha256 of a row whose file
  is there), or twice in the folder, is skipped and counted.
* Copied (or, with ``link``, hard-linked: no second copy on disk) to
  ``outputs/imported/<folder name>/<its path in the folder>``, under a free name, then recorded
  with its tool as ``source``. Files go in batches: written under temporary names, renamed, and
  recorded in one transaction; if the transaction fails, the batch's files are removed.
* Images without parameters come in as plain images (source "import") unless ``plain=False``.
* Resumable: run it again after a stop, a cancel or a crash and what is in is skipped as a
  duplicate. Cancel (``cancel.set()``, Ctrl-C in the command) stops after the current file; what
  was imported stays, whole.
* Every problem is one line naming the file and what is wrong; the rest of the folder continues.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from studio.errors import InvalidRequest, StudioError
from studio.gallery.files import TEMP_PREFIX
from studio.gallery.pnginfo import NO_PARAMETERS, chunks_of, info_from_chunks
from studio.gallery.imagefile import read_bytes
from studio.gallery.reconcile import IMAGE_SUFFIXES, new_from_info
from studio.gallery.records import NewImage
from studio.gallery.store import GalleryStore

IMPORTED_FOLDER = "imported"
BATCH = 200                  # files per transaction
PROGRESS_EVERY = 0.25        # seconds between progress reports


@dataclass(frozen=True, slots=True)
class ImportProgress:
    done: int                # files looked at
    total: int               # files found
    imported: int
    duplicates: int
    failed: int
    seconds: float

    @property
    def files_per_s(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far (None before there is one)."""
        return (self.total - self.done) / self.files_per_s if self.files_per_s else None

    def line(self) -> str:
        eta = f" · ETA {self.eta:.0f} s" if self.eta is not None else ""
        return (f"{self.done}/{self.total} files · {self.files_per_s:.0f} files/s{eta} · {self.imported} imported, "
                f"{self.duplicates} duplicates, {self.failed} failed")


@dataclass(frozen=True, slots=True)
class FolderReport:
    folder: str
    found: int = 0                                   # image files under the folder
    imported: int = 0                                # new rows (plain ones included)
    duplicates: int = 0                              # content already in the gallery (or twice in the folder)
    plain: int = 0                                   # imported without generation parameters
    skipped_plain: int = 0                           # without parameters, left out (plain=False)
    failed: tuple[tuple[str, str], ...] = ()         # (file, why): not imported
    notes: tuple[tuple[str, str], ...] = ()          # (file, what): imported, something left out or unreadable
    sources: tuple[tuple[str, int], ...] = ()        # imported per source
    cancelled: bool = False
    seconds: float = 0.0

    @property
    def files_per_s(self) -> float:
        looked = self.imported + self.duplicates + self.skipped_plain + len(self.failed)
        return looked / self.seconds if self.seconds > 0 else 0.0

    def counts(self) -> dict[str, object]:
        """The numbers (what the API returns)."""
        return {"folder": self.folder, "found": self.found, "imported": self.imported, "duplicates": self.duplicates,
                "plain": self.plain, "skipped_plain": self.skipped_plain, "failed": len(self.failed),
                "sources": dict(self.sources), "cancelled": self.cancelled, "seconds": round(self.seconds, 2),
                "files_per_s": round(self.files_per_s, 1),
                "problems": [f"{name}: {why}" for name, why in self.failed][:100]}

    def summary(self) -> str:
        sources = ", ".join(f"{name} {n}" for name, n in self.sources)
        lines = [f"{'Cancelled: ' if self.cancelled else ''}{self.imported} of {self.found} imported"
                 + (f" ({sources})" if sources else "") + f", {self.duplicates} already in the gallery"
                 + (f", {self.skipped_plain} without parameters left out" if self.skipped_plain else "")
                 + f", {len(self.failed)} failed · {self.seconds:.1f} s, {self.files_per_s:.0f} files/s."]
        lines += [f"{name}: {why}" for name, why in self.failed[:20]]
        if len(self.failed) > 20:
            lines.append(f"... and {len(self.failed) - 20} more")
        return "\n".join(lines)


@dataclass
class _Pending:
    temp: Path
    final: Path
    image: NewImage
    name: str


@dataclass
class _Tally:
    imported: int = 0
    duplicates: int = 0
    plain: int = 0
    skipped_plain: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    sources: Counter = field(default_factory=Counter)


def image_files(folder: Path, skip: Sequence[Path] = ()) -> tuple[list[Path], list[tuple[str, str]]]:
    """Every image file under ``folder`` (sorted, links followed once) and (path, why) for what could
    not be walked: a folder link that loops back, an unreadable folder, a broken link."""
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    skipped = {os.path.realpath(p) for p in skip}
    seen: set[tuple[int, int]] = set()

    def visit(path: Path) -> None:
        try:
            stat = path.stat()
        except OSError as err:
            problems.append((_rel(path, folder), f"cannot be read ({err.strerror or type(err).__name__})"))
            return
        if (stat.st_dev, stat.st_ino) in seen:
            problems.append((_rel(path, folder), "a folder link that leads back to a folder already walked "
                                                 "(a loop); not followed"))
            return
        seen.add((stat.st_dev, stat.st_ino))
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as err:
            problems.append((_rel(path, folder), f"cannot be listed ({err.strerror or type(err).__name__})"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()          # follows links
            except OSError:
                is_dir = False
            if is_dir:
                if os.path.realpath(entry.path) not in skipped:
                    visit(Path(entry.path))
            elif entry.name.lower().endswith(IMAGE_SUFFIXES):
                if entry.is_symlink() and not os.path.exists(entry.path):
                    problems.append((_rel(Path(entry.path), folder), "a link to a file that is not there"))
                else:
                    files.append(Path(entry.path))

    visit(folder)
    return files, problems


def _rel(path: Path, folder: Path) -> str:
    try:
        return path.relative_to(folder).as_posix() or "."
    except ValueError:
        return str(path)


def import_folder(store: GalleryStore, folder: Path | str, *, link: bool = False, plain: bool = True,
                  tags: Sequence[str] = (), cancel: threading.Event | None = None,
                  on_progress: Callable[[ImportProgress], None] | None = None) -> FolderReport:
    """Import every image under ``folder`` (see the module doc). Raises ``InvalidRequest`` only for
    the folder itself (missing, not a folder, inside outputs, a link that cannot be made there);
    every file's problem is in the report."""
    started = time.perf_counter()
    source = _checked_folder(store, folder, link)
    files, problems = image_files(source, skip=[store.outputs_dir])
    tally = _Tally(failed=list(problems))
    known = _known_hashes(store)
    target_root = store.outputs_dir / IMPORTED_FOLDER / (source.name or "folder")
    taken = _taken_paths(store, target_root)
    pending: list[_Pending] = []
    last = 0.0
    done = 0

    def report(force: bool = False) -> None:
        nonlocal last
        now = time.perf_counter()
        if on_progress is not None and (force or now - last >= PROGRESS_EVERY):
            last = now
            on_progress(ImportProgress(done, len(files), tally.imported + len(pending), tally.duplicates,
                                       len(tally.failed) - len(problems), now - started))

    report(force=True)
    try:
        for path in files:
            if cancel is not None and cancel.is_set():
                break
            name = _rel(path, source)
            try:
                item = _prepare(path, name, source, target_root, known, taken, link, plain, tags, tally)
            except StudioError as err:
                tally.failed.append((name, str(err).removeprefix("image: ")))
                item = None
            except OSError as err:
                tally.failed.append((name, f"cannot be copied ({err.strerror or type(err).__name__})"))
                item = None
            if item is not None:
                pending.append(item)
            done += 1
            if len(pending) >= BATCH:
                _commit(store, pending, tally)
            report()
        _commit(store, pending, tally)
    finally:
        for item in pending:                     # an error before they were recorded: nothing stays
            item.temp.unlink(missing_ok=True)
    report(force=True)
    return FolderReport(str(source), len(files), tally.imported, tally.duplicates, tally.plain, tally.skipped_plain,
                        tuple(tally.failed), tuple(tally.notes), tuple(sorted(tally.sources.items())),
                        bool(cancel is not None and cancel.is_set() and done < len(files)),
                        time.perf_counter() - started)


def _checked_folder(store: GalleryStore, folder: Path | str, link: bool) -> Path:
    source = Path(folder).expanduser()
    if not source.exists():
        raise InvalidRequest("folder", f"{str(source)!r} does not exist")
    if not source.is_dir():
        raise InvalidRequest("folder", f"{str(source)!r} is not a folder")
    source = source.resolve()
    if source == store.outputs_dir or store.outputs_dir in source.parents:
        raise InvalidRequest("folder", f"{str(source)!r} is inside the gallery's outputs folder; its images are "
                                       "picked up there by reconcile, not imported")
    if link and os.stat(source).st_dev != os.stat(store.outputs_dir).st_dev:
        raise InvalidRequest("link", f"{str(source)!r} is on another file system than {store.outputs_dir}: files "
                                     "can only be linked within one; import copies instead")
    return source


def _known_hashes(store: GalleryStore) -> set[str]:
    """Content of every row whose file is there (one query, not one per file)."""
    with store.engine.connect() as conn:
        return set(conn.exec_driver_sql("SELECT sha256 FROM images WHERE missing = 0").scalars())


def _taken_paths(store: GalleryStore, root: Path) -> set[str]:
    """Paths of rows under ``root``, relative to it (a row whose file is missing still holds its name)."""
    prefix = store.stored_path(root) + "/"
    with store.engine.connect() as conn:
        return {path[len(prefix):] for path in conn.exec_driver_sql(
            "SELECT path FROM images WHERE path >= ? AND path < ?", (prefix, prefix[:-1] + "0")).scalars()}


def _prepare(path: Path, name: str, source: Path, root: Path, known: set[str], taken: set[str], link: bool,
             plain: bool, tags: Sequence[str], tally: _Tally) -> _Pending | None:
    """Read, check, deduplicate and write one file under a temporary name; None if it is skipped."""
    try:
        made = path.stat().st_mtime
    except FileNotFoundError:
        raise InvalidRequest("image", f"{name!r} is not there any more (moved or deleted during the import)") from None
    data = read_bytes(path, name)
    digest = hashlib.sha256(data).hexdigest()
    if digest in known:
        tally.duplicates += 1
        return None
    chunks, width, height = chunks_of(data, name)
    info = info_from_chunks(name, chunks, width, height)
    if info.source == "none" and not plain:
        tally.skipped_plain += 1
        return None
    final = _free_name(root, name, taken)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.with_name(f"{TEMP_PREFIX}{os.getpid()}-{final.name}")
    if link:
        os.link(path, temp)
    else:
        with open(temp, "wb") as handle:
            handle.write(data)
    known.add(digest)
    image = new_from_info(info, final, digest, datetime.fromtimestamp(made, timezone.utc))
    if tags:
        image = _with_tags(image, tags)
    if info.source == "none" and info.problem != NO_PARAMETERS:
        tally.notes.append((name, "imported without parameters: " + info.problem[len(NO_PARAMETERS) + 2:]))
    elif info.notes:
        tally.notes.append((name, "; ".join(info.notes)))
    return _Pending(temp, final, image, name)


def _with_tags(image: NewImage, tags: Sequence[str]) -> NewImage:
    import dataclasses

    return dataclasses.replace(image, tags=tuple(tags))


def _free_name(root: Path, name: str, taken: set[str]) -> Path:
    """``root/name``, or ``<stem>-1<suffix>``, ``-2``...: held by neither a file nor a row (``taken``
    holds the rows' paths under ``root``, relative to it)."""
    target = root / name
    candidate, n = target, 1
    while os.path.lexists(candidate) or candidate.relative_to(root).as_posix() in taken:
        candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
        n += 1
    taken.add(candidate.relative_to(root).as_posix())
    return candidate


def _commit(store: GalleryStore, pending: list[_Pending], tally: _Tally) -> None:
    """Rename the batch's files to their names and record them in one transaction (all or none)."""
    if not pending:
        return
    with store.lock:                 # a reconcile pass never sees these files before their rows
        renamed: list[Path] = []
        try:
            for item in pending:
                os.replace(item.temp, item.final)
                renamed.append(item.final)
            store.add_many([item.image for item in pending])
        except BaseException:
            for path in renamed:
                path.unlink(missing_ok=True)
            raise
    for item in pending:
        tally.imported += 1
        tally.plain += item.image.source == "import"
        tally.sources[item.image.source] += 1
    pending.clear()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.gallery.import_folder",
                                     description="Import a folder of images (A1111, Forge, Fooocus, ComfyUI, InvokeAI, "
                                                 "SwarmUI, NovelAI...) into the studio's gallery.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--outputs-dir", type=Path, default=Path(os.environ.get("STUDIO_OUTPUTS_DIR") or "outputs"),
                        help="the studio's outputs folder (default ./outputs, or STUDIO_OUTPUTS_DIR)")
    parser.add_argument("--link", action="store_true", help="hard-link the files instead of copying them "
                                                            "(same file system only)")
    parser.add_argument("--skip-plain", action="store_true", help="leave out images without generation parameters")
    parser.add_argument("--tag", action="append", default=[], help="a tag for every imported image (repeatable)")
    args = parser.parse_args(argv)
    cancel = threading.Event()
    outcome: dict[str, object] = {}

    def show(progress: ImportProgress) -> None:
        print("\r" + progress.line() + " " * 8, end="", file=sys.stderr, flush=True)

    def work() -> None:
        try:
            with GalleryStore(args.outputs_dir.expanduser().resolve()) as store:
                outcome["report"] = import_folder(store, args.folder, link=args.link, plain=not args.skip_plain,
                                                  tags=args.tag, cancel=cancel, on_progress=show)
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            outcome["error"] = err

    worker = threading.Thread(target=work, name="import-folder")
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        cancel.set()
        print("\ncancelling after the current file...", file=sys.stderr)
        worker.join()
    print(file=sys.stderr)
    if "error" in outcome:
        err = outcome["error"]
        if isinstance(err, StudioError):
            print(f"error: {err}", file=sys.stderr)
            return 2
        raise err  # type: ignore[misc]
    report = outcome["report"]
    print(report.summary())  # type: ignore[union-attr]
    return 130 if report.cancelled else 0  # type: ignore[union-attr]


if __name__ == "__main__":
    sys.exit(main())
