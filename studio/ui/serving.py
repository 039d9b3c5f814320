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

**Public mode** (``--public``, ``studio/public.py``): every browser gets a visitor cookie
(``studio_visitor``, random, HttpOnly; on https ``SameSite=None; Secure; Partitioned`` so a Space's
iframe keeps it), set on the first response that finds none; gradio_client keeps it too (it keeps
the cookies of its first request). Its hash is the visitor's owner id. A file under outputs is then
served only to the visitor whose image it is (or whose image reads it, for a stored input), and
every refusal is a 404, the same answer as for a file that does not exist, so nothing can be probed.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from http.cookies import CookieError, SimpleCookie
from pathlib import Path

from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import get_route_path

from studio.public import TOKEN, visitor_owner

COOKIE = "studio_visitor"
COOKIE_MAX_AGE = 30 * 24 * 3600
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


def may_serve(target: str, outputs_dir: Path, gradio_dirs: Sequence[Path],
              owns: Callable[[str], bool] | None = None) -> bool:
    """Whether ``/gradio_api/file=<target>`` may be answered (see the module doc). ``owns`` (public
    mode): whether the asking visitor owns a file under outputs, by its path relative to outputs."""
    if "://" in target or not target:
        return False
    real = Path(os.path.realpath(os.path.abspath(target)))
    inside_outputs = _inside(real, Path(os.path.realpath(outputs_dir)))
    if inside_outputs is not None:
        return (real.suffix.lower() in SERVED_SUFFIXES
                and not any(part.startswith(".") for part in inside_outputs.parts)
                and (owns is None or owns(inside_outputs.as_posix())))
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


def visitor_token(scope: dict) -> str | None:
    """The request's visitor cookie, when it has a well-formed one."""
    for name, value in scope.get("headers") or ():
        if name == b"cookie":
            try:
                morsel = SimpleCookie(value.decode("latin-1")).get(COOKIE)
            except CookieError:
                continue
            if morsel is not None and TOKEN.fullmatch(morsel.value):
                return morsel.value
    return None


def _https(scope: dict) -> bool:
    forwarded = dict(scope.get("headers") or ()).get(b"x-forwarded-proto", b"").decode("latin-1")
    return scope.get("scheme") == "https" or forwarded.split(",")[0].strip() == "https"


def set_cookie_header(token: str, https: bool) -> bytes:
    where = "SameSite=None; Secure; Partitioned" if https else "SameSite=Lax"
    return f"{COOKIE}={token}; Path=/; Max-Age={COOKIE_MAX_AGE}; HttpOnly; {where}".encode("latin-1")


class ServeOnlyShown:
    """ASGI middleware: file routes answer only for ``may_serve`` paths (403 otherwise; public mode:
    404, and visitor cookies, see the module doc). ``owns(owner, path)``: the gallery's answer to
    "is this file under outputs one of this owner's?" (``GalleryStore.owns_file``)."""

    def __init__(self, app, outputs_dir: Path | str, public: bool = False,  # noqa: ANN001 - any ASGI app
                 owns: Callable[[str, str], bool] | None = None) -> None:
        self.app = app
        self.outputs_dir = Path(outputs_dir)
        self.public, self.owns = public, owns

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 - ASGI
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        token = visitor_token(scope) if self.public else None
        target = file_target(scope)
        if target is not None:
            owns = None
            if self.public:
                owner = visitor_owner(token) if token else None
                owns = (lambda rel: self.owns(owner, rel)) if owner and self.owns else (lambda rel: False)
            if not may_serve(target, self.outputs_dir, gradio_folders(), owns):
                refused = PlainTextResponse("Not Found", status_code=404) if self.public else \
                    PlainTextResponse("File not allowed.", status_code=403)
                await refused(scope, receive, send)
                return
        if not self.public or token is not None:
            await self.app(scope, receive, send)
            return
        cookie = set_cookie_header(secrets.token_urlsafe(24), _https(scope))

        async def with_cookie(message) -> None:  # noqa: ANN001 - ASGI
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        await self.app(scope, receive, with_cookie)


def app_kwargs(outputs_dir: Path | str, *, public: bool = False,
               owns: Callable[[str, str], bool] | None = None) -> dict:
    """For ``launch(app_kwargs=...)``: Gradio's FastAPI app is built with this middleware."""
    return {"middleware": [Middleware(ServeOnlyShown, outputs_dir=Path(outputs_dir), public=public, owns=owns)]}
