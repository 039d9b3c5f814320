"""What the Gallery and PNG Info tabs show and do, as plain Python (no Gradio here).

The tabs (``studio/ui/tab_gallery.py``, ``tab_pnginfo.py``) only wire widgets to these
functions, so everything a user can do there is tested without a browser.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from studio.errors import InvalidRequest, ModelUnavailable
from studio.gallery.files import encode_png, write_atomic
from studio.gallery.pnginfo import NO_PARAMETERS, ImageInfo, read_image_info
from studio.gallery.presence import LocalFiles, Presence
from studio.gallery.readers import NAMES
from studio.gallery.store import GalleryQuery, GalleryStore, ImageRecord, Page
from studio.models.filehash import HashCache
from studio.results import GenerationResult

PER_PAGE = 48
MISSING_CAPTION = "file missing"
EXPORT_PREFIX = "export-"
EXPORT_KEEP_SECONDS = 3600
MAX_SIZE_FILTER = 100_000      # any real image is smaller; larger numbers overflow SQLite's integers
SORT_CHOICES = [("Newest first", "newest"), ("Oldest first", "oldest"), ("Best match", "relevance"), ("Seed", "seed")]
SOURCE_CHOICES = [("any", ""), ("this studio", "studio"), ("A1111 / Forge", "a1111"), ("Fooocus", "fooocus"),
                  ("ComfyUI", "comfyui"), ("InvokeAI", "invokeai"), ("SwarmUI", "swarmui"), ("NovelAI", "novelai"),
                  ("no parameters", "import")]
SEARCH_HELP = ('Words match prompt, negative prompt, model, LoRA names and tags (prefixes too: "cat" finds '
               '"cats"). "a phrase", -without, prompt: neg: model: lora: tag: for one field; seed:42 and '
               'source:fooocus are exact.')


def store_of(studio: Any) -> GalleryStore | None:
    """The studio's gallery, when its sink keeps one (``GallerySink``)."""
    store = getattr(getattr(studio, "sink", None), "store", None)
    return store if isinstance(store, GalleryStore) else None


def parse_day(text: str | None, name: str) -> date | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(name, f"expected a date like 2026-11-25, got {text!r}") from None


def parse_size(text: str | None) -> tuple[int | None, int | None]:
    text = (text or "").strip().lower().replace("×", "x").replace(" ", "")
    if not text:
        return None, None
    width, sep, height = text.partition("x")
    if not sep or not width.isdecimal() or not height.isdecimal():
        raise InvalidRequest("size", f"expected WIDTHxHEIGHT like 832x1216, got {text!r}")
    if not (1 <= int(width) <= MAX_SIZE_FILTER and 1 <= int(height) <= MAX_SIZE_FILTER):
        raise InvalidRequest("size", f"width and height must be within 1..{MAX_SIZE_FILTER}, got {text!r}")
    return int(width), int(height)


def build_query(text: str = "", model: str | None = None, task: str | None = None, lora: str | None = None,
                favourites_only: bool = False, date_from: str = "", date_to: str = "", size: str = "",
                include_missing: bool = False, sort: str = "newest", page: int = 1,
                per_page: int = PER_PAGE, source: str | None = None, owner: str | None = None) -> GalleryQuery:
    """The search form's values -> a query (empty dropdowns mean "any"); ``owner``: public mode."""
    width, height = parse_size(size)
    return GalleryQuery(text=text or "", model_id=model or None, task=task or None, lora=lora or None,
                        source=source or None,
                        favourite=True if favourites_only else None, date_from=parse_day(date_from, "date_from"),
                        date_to=parse_day(date_to, "date_to"), width=width, height=height,
                        missing=None if include_missing else False, sort=sort or "newest",
                        page=max(1, int(page or 1)), per_page=per_page, owner=owner)


def caption(record: ImageRecord) -> str:
    star = "★ " if record.favourite else ""
    prompt = record.prompt if len(record.prompt) <= 60 else record.prompt[:57] + "..."
    return f"{star}#{record.id} · {prompt}"


def _shown(page: Page, missing_image: str | Path | None) -> list[tuple[int, str, str]]:
    cells = []
    for r in page.items:
        if not r.missing and Path(r.path).is_file():
            cells.append((r.id, r.path, caption(r)))
        elif missing_image is not None:
            cells.append((r.id, str(missing_image), f"{caption(r)} · {MISSING_CAPTION}"))
    return cells


def grid(page: Page, missing_image: str | Path | None = None) -> list[tuple[str, str]]:
    """(file, caption) per image of the page. A row whose file is gone shows ``missing_image``
    (see ``missing_placeholder``), captioned "file missing", so it can be clicked, selected and
    deleted; without one it is left out."""
    return [(path, text) for _, path, text in _shown(page, missing_image)]


def grid_ids(page: Page, missing_image: str | Path | None = None) -> list[int]:
    """The image ids of ``grid(page, missing_image)``, in the same order (a click gives an index)."""
    return [image_id for image_id, _, _ in _shown(page, missing_image)]


def missing_placeholder(folder: Path) -> Path:
    """The picture shown for a row whose file is gone: a grey square with a cross, written once
    into ``folder`` (a folder of the app's own, outside outputs: reconcile would import it)."""
    path = Path(folder) / "file-missing.png"
    if not path.is_file():
        im = Image.new("RGB", (256, 256), (120, 120, 120))
        draw = ImageDraw.Draw(im)
        draw.line((48, 48, 208, 208), fill=(230, 230, 230), width=12)
        draw.line((48, 208, 208, 48), fill=(230, 230, 230), width=12)
        draw.text((128, 236), MISSING_CAPTION, fill=(255, 255, 255), anchor="ms")
        write_atomic(encode_png(im, {}), path)
    return path


def page_label(page: Page) -> str:
    return f"page {page.page} of {page.pages} · {page.total} image{'s' if page.total != 1 else ''}"


def selection_choices(page: Page) -> list[tuple[str, int]]:
    return [(caption(r), r.id) for r in page.items]


def summary(record: ImageRecord, presence: Presence | None = None) -> str:
    """Markdown: the facts people look for first (with ``presence``: whether its model and LoRAs are here)."""
    loras = ", ".join(f"{x.name} ({x.weight:g})" for x in record.loras) or "none"
    lines = [f"**#{record.id}** · {record.created_at.astimezone():%Y-%m-%d %H:%M:%S} · {record.task} · "
             f"`{record.model_id}`" + (f" @ `{record.model_revision[:12]}`" if record.model_revision else ""),
             f"seed **{'unknown' if record.seed is None else record.seed}** · {record.size} · {record.steps} steps · "
             f"guidance {record.guidance} · {record.scheduler or '-'}" + (f" · strength {record.strength}" if record.strength is not None else ""),
             f"LoRAs: {loras}"]
    if record.controls:
        lines.append("ControlNet: " + "; ".join(f"{c.type} {c.scale:g} ({Path(c.image).name})"
                                                for c in record.controls))
    for prompt in record.image_prompts:
        lines.append(f"IP-Adapter {prompt.adapter or '(default)'}: {prompt.scale:g} "
                     f"({', '.join(Path(x).name for x in prompt.images)})")
    if presence is not None:
        lines.append(("Files: " if not presence.missing else "**Files:** ") + presence.line())
    if record.tags:
        lines.append("Tags: " + ", ".join(record.tags))
    if record.missing:
        lines.append("**The file is missing** (moved or deleted outside the studio).")
    if record.source not in ("studio",):
        lines.append(f"Imported from {NAMES.get(record.source, record.source)}"
                     + ("" if record.request_json else ": its values are not a request as they stand; send it to "
                                                      "txt2img to adapt them") + ".")
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in record.timings)
    if timings:
        lines.append(f"Timings: {timings}")
    return "  \n".join(lines)


def detail_json(record: ImageRecord, *, paths: bool = True) -> dict[str, Any]:
    """The row for the JSON view. A seed above 2^53 is shown as text: a browser's numbers would
    round it (18446744073709551615 -> 18446744073709552000). ``paths=False`` (public mode): the
    file by its name, no folder of the server's."""
    data = record.to_dict()
    if not paths:
        data["path"] = Path(record.path).name
    data.pop("infotext", None)
    for holder in (data, data.get("request") or {}):
        if isinstance(holder.get("seed"), int) and holder["seed"] > 2**53:
            holder["seed"] = str(holder["seed"])
    return data


def form_fields(record: ImageRecord) -> dict[str, Any]:
    """What "send to txt2img" loads, by request field name: the exact request's values, or the
    recorded ones for an import. The form keeps only what it accepts (``studio.forms.adapt``)."""
    if record.request is not None:
        request = record.request
        return {name: getattr(request, name) for name in request.__dataclass_fields__}
    return {"prompt": record.prompt, "negative_prompt": record.negative_prompt, "model_id": record.model_id,
            "width": record.width, "height": record.height, "steps": record.steps, "guidance": record.guidance,
            "seed": record.seed, "loras": record.loras}


def info_fields(info: ImageInfo) -> dict[str, Any]:
    """PNG Info's values for "send to": the image's own size when its metadata has none."""
    return {"width": info.width, "height": info.height, **info.fields}


def regenerate(studio: Any, store: GalleryStore, image_id: int, files: LocalFiles | None = None, *,
               owner: str | None = None, **kwargs: Any) -> GenerationResult:
    """Make image ``image_id`` again: the same resolved request (its own seed, batch of one).
    Same device and dtype give the same pixels; the new image is a new gallery row. With ``files``,
    the row's model and LoRAs are looked up first (by name, then by the hash its tool wrote): a file
    found under another name is used, a missing one is named (``ModelUnavailable``) before anything runs.
    ``owner`` (public mode): only that visitor's images, and the new one is its own."""
    request = store.request_of(image_id, owner=owner)
    if files is not None:
        presence = files.of_record(store.get(image_id, owner=owner))
        if presence.missing:
            raise ModelUnavailable(presence.message(image_id))
        request = presence.apply(request)
    if owner is not None:
        kwargs["owner"] = owner
    return studio.generate(request, **kwargs)


def local_files(studio: Any, settings: Any = None, *, paths: bool = True) -> LocalFiles:
    """The lookup of models and LoRAs by name and hash for ``studio``'s registry; with ``settings``,
    hashes are kept in ``<cache_dir>/file-hashes.json`` and messages name ``<models_dir>`` (unless
    ``paths=False``, public mode: then ``models/...``, no folder of the server's)."""
    cache = getattr(settings, "cache_dir", None)
    return LocalFiles(studio.registry, HashCache(Path(cache) / "file-hashes.json" if cache else None),
                      getattr(settings, "models_dir", "") if paths else "")


def export(store: GalleryStore, image_ids: list[int], folder: Path, *, owner: str | None = None) -> Path:
    """A zip of the images, in a folder of its own under ``folder`` with a random name: two
    sessions' exports never share, overwrite or guess each other's file. (The UI hands the zip
    to Gradio, which serves a copy to the session that asked; see ``studio/ui/serving.py``.)
    Exports older than ``EXPORT_KEEP_SECONDS`` are removed first."""
    if not image_ids:
        raise InvalidRequest("selection", "select at least one image to export")
    if owner is not None:                 # public mode: another visitor's id is not found, like no id at all
        for image_id in image_ids:
            if store.get(int(image_id), owner=owner) is None:
                raise InvalidRequest("selection", f"no gallery image {int(image_id)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_old_exports(folder)
    own = Path(tempfile.mkdtemp(prefix=EXPORT_PREFIX, dir=folder))
    name = f"gallery-{datetime.now():%Y%m%d-%H%M%S}-{len(image_ids)}.zip"
    return store.export_zip(sorted({int(i) for i in image_ids}), own / name, owner=owner)


def _remove_old_exports(folder: Path) -> None:
    limit = time.time() - EXPORT_KEEP_SECONDS
    for old in folder.glob(f"{EXPORT_PREFIX}*"):
        try:
            if old.is_dir() and old.stat().st_mtime < limit:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


def png_info(path: str | Path | None) -> ImageInfo | None:
    return read_image_info(path) if path else None


def png_info_summary(info: ImageInfo | None) -> str:
    if info is None:
        return "Drop an image to read the parameters it carries."
    text = f"**{Path(info.path).name}** · {info.width}x{info.height} · from {NAMES.get(info.source, info.source)}"
    if info.problem and info.source != "none":
        text += f"  \nNot a request as it stands: {info.problem} (send-to adapts it)."
    elif info.source == "none" and info.problem != NO_PARAMETERS:
        text += f"  \n{info.problem[len(NO_PARAMETERS) + 2:]}"
    if info.notes:
        text += "  \nLeft out: " + "; ".join(info.notes) + "."
    return text


def png_info_outputs(info: ImageInfo | None) -> tuple[str, str, str, dict[str, Any] | None, Any, str]:
    """PNG Info's labeled returns after the preview: Summary, Infotext, Source, Request (the checked
    request, or None), Parameters (the tool's own, every key), Problem (why no request, what was
    left out; "" when none)."""
    if info is None:
        return png_info_summary(None), "", "", None, {}, ""
    request = json.loads(json.dumps(info.request.to_dict())) if info.request is not None else None
    parameters = json.loads(json.dumps(info.parameters, default=str))
    return png_info_summary(info), info.infotext, info.source, request, parameters, info.problems


def png_info_json(info: ImageInfo | None) -> dict[str, Any]:
    """Everything found, for the JSON view: the file by its name (an upload's folder is the server's)."""
    if info is None:
        return {}
    data = info.to_dict()
    data = {"file": Path(data.pop("path")).name, **data}
    return json.loads(json.dumps(data, default=str))
