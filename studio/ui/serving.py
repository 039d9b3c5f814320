"""What the server hands out over HTTP: the pictures the UI shows, nothing private.

Gradio 6 serves files at ``/gradio_api/file=<path>`` (and the older ``/gradio_api/file/<path>``):
any file under ``allowed_paths`` (the outputs folder: ``_check_allowed`` needs it there, or
handlers could not return our PNGs when outputs lie outside the working and temp folders), plus
its own upload/cache folder (``GRADIO_TEMP_DIR``, default ``<tmp>/gradio``) and examples cache.
Its ``blocked_paths`` match fixed paths only, so they cannot name files that appear later
(``gallery.db.bak-<revision>-<time>``, WAL files, a zip someone dropped into outputs).

``ServeOnlyShown`` is an ASGI middleware placed in front of Gradio's routes (through
``launch(app_kwargs={"middleware": ...})``, see ``app_kwargs``). For a file route it resolves the
path (symlinks included) and lets the request through only when ``may_serve`` says so:

* inside the outputs folder: image files (``SERVED_SUFFIXES``) whose path has no dot-named part
  (``.tmp-*`` half-written, ``.deleted-*`` being deleted). Never ``gallery.db``, ``-wal``,
  ``-shm``, ``-journal``, backups, zips, text files, or a symlink leading out;
* inside Gradio's upload/cache folder: what Gradio put there. Every file a handler returns is
  *copied* there first (``move_files_to_cache``), named by a hash of its content salted with a
  secret per installation (``gradio.utils.get_hash_seed``): the URL cannot be guessed, and is
  sent only to the session whose event returned it. Exports reach their session this way;
* anything else, and any ``http(s)://`` target (Gradio would fetch it as a proxy; the UI never
  asks for that): 403.

The rest (login, ranges, content types) stays Gradio's: a request let through meets its checks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import get_route_path

SERVED_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/")


def gradio_folders() -> list[Path]:
    """Where Gradio keeps what it made: uploads and returned files, cached examples."""
    from gradio import utils

    return [Path(utils.get_upload_folder()), Path(utils.get_cache_folder())]


def _inside(path: Path, folder: Path) -> Path | None:
    """``path`` relative to ``folder`` (both resolved) when inside it, else None."""
    try:
        return path.relative_to(folder)
    except ValueError:
        return None


def may_serve(target: str, outputs_dir: Path, gradio_dirs: Sequence[Path]) -> bool:
    """Whether ``/gradio_api/file=<target>`` may be answered (see the module doc)."""
    if "://" in target or not target:
        return False
    real = Path(os.path.realpath(os.path.abspath(target)))
    inside_outputs = _inside(real, Path(os.path.realpath(outputs_dir)))
    if inside_outputs is not None:
        return (real.suffix.lower() in SERVED_SUFFIXES
                and not any(part.startswith(".") for part in inside_outputs.parts))
    return any(_inside(real, Path(os.path.realpath(folder))) is not None for folder in gradio_dirs)


def file_target(scope: dict) -> str | None:
    """The path a Gradio file route is asked for, or None for any other request."""
    if scope.get("type") != "http":
        return None
    route = get_route_path(scope)
    for prefix in FILE_ROUTES:
        if route.startswith(prefix):
            return route[len(prefix):]
    return None


class ServeOnlyShown:
    """ASGI middleware: file routes answer only for ``may_serve`` paths (403 otherwise)."""

    def __init__(self, app, outputs_dir: Path | str) -> None:  # noqa: ANN001 - any ASGI app
        self.app = app
        self.outputs_dir = Path(outputs_dir)

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 - ASGI
        target = file_target(scope)
        if target is not None and not may_serve(target, self.outputs_dir, gradio_folders()):
            await PlainTextResponse("File not allowed.", status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def app_kwargs(outputs_dir: Path | str) -> dict:
    """For ``launch(app_kwargs=...)``: Gradio's FastAPI app is built with this middleware."""
    return {"middleware": [Middleware(ServeOnlyShown, outputs_dir=Path(outputs_dir))]}
