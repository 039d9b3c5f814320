"""What app.py does around the server's start. Nothing here imports torch or gradio.

- ``check_address``: the port is free and the host is this machine's, or a ``StartupError``
  that names ``--port`` / ``--host`` (gradio would say so only after seconds of imports, with a
  traceback advising an environment variable the studio does not read).
- ``check_outputs_dir``: the outputs folder exists (created if missing) and takes a file, or a
  ``StorageError`` naming it and the system's reason (not a SQLAlchemy traceback, later).
- ``exposure_warning``: ``--listen`` / ``--share`` without ``--auth`` lets anyone generate, see
  the gallery and delete images; say so at every start.
- ``WarmUp``: load the default model once the first page is drawn, not while it is served.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import tempfile
import threading
from pathlib import Path

from studio.config import Settings
from studio.errors import StartupError, StorageError

ALL_INTERFACES = ("0.0.0.0", "::")
WARM_UP_FALLBACK_S = 20.0      # no page drawn by then (API use, no browser): warm up anyway
OUTPUTS_FIX = "Choose another folder with --outputs-dir DIR (or STUDIO_OUTPUTS_DIR), or make this one writable."


def port_in_use_message(host: str, port: int) -> str:
    return (f"port {port} is already in use on {host} (is the studio already running?). "
            "Choose another with --port N (or STUDIO_PORT=N).")


def check_address(host: str, port: int) -> None:
    """Bind ``host:port`` as the server will (SO_REUSEADDR, like uvicorn), then let it go."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise StartupError(f"--host {host} is not a known address ({err.strerror}). Use an address of this "
                           "machine, or --listen for all of them.") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise StartupError(port_in_use_message(host, port)) from None
            if err.errno == errno.EACCES:
                raise StartupError(f"port {port} needs administrator rights here. Choose one above 1023 with "
                                   "--port N (or STUDIO_PORT=N).") from None
            raise StartupError(f"cannot listen on {host}:{port}: {err.strerror}. Check --host "
                               "(an address of this machine) or use --listen.") from None


def check_outputs_dir(folder: Path) -> None:
    """Create ``folder`` if missing and write (then remove) a file in it: as root, os.access says
    yes to everything, and a read-only disk says no only when written to."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise StorageError.cannot_write(folder, err, OUTPUTS_FIX) from err


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_share(settings: Settings) -> None:
    """A share link is public: without --auth it is refused unless the studio is in public mode (each
    visitor sees only their own images, within limits) or --insecure-share says "I know"."""
    if settings.share and not settings.auth and not settings.public and not settings.insecure_share:
        raise StartupError("--share without --auth: anyone with the link could generate, see the gallery and delete "
                           "images. Add --auth user:pass (or STUDIO_AUTH), or --public (each visitor gets a gallery "
                           "of their own, within limits), or --insecure-share if that is what you want.")


def share_line(url: str | None, gradio_said: str, settings: Settings | None = None) -> str:
    """One line on the share link: its address and who can use it, or why there is none (the studio
    serves locally)."""
    if url:
        if settings is None or settings.auth:
            who = "anyone with it must log in: --auth"
        elif settings.public:
            who = "public mode: each visitor sees only their own images"
        else:
            who = "no login: anyone with it can use the studio and its whole gallery"
        return f"Share link: {url}  ({who})"
    reason = next((line.strip() for line in gradio_said.splitlines() if "share link" in line.lower()),
                  "the share server could not be reached")
    return f"No share link: {reason.removesuffix('.')} (no network?). Serving locally only."


def exposure_warning(settings: Settings) -> str:
    """A warning when others could use this studio without logging in; "" when they cannot."""
    if settings.auth:
        return ""
    ways = []
    if not is_loopback(settings.host):
        flag = "--listen" if settings.host in ALL_INTERFACES else f"--host {settings.host}"
        ways.append((flag, f"port {settings.port} of this machine"))
    if settings.share:
        ways.append(("--share", "the public share link"))
    if not ways:
        return ""
    flags = " and ".join(flag for flag, _ in ways)
    reach = " or ".join(where for _, where in ways)
    if settings.public:
        return (f"{flags} without --auth, in public mode: anyone who can reach {reach} can generate images within "
                f"the limits (--max-size {settings.max_size}, --max-steps {settings.max_steps}, --max-images "
                f"{settings.max_images}, --max-queue {settings.max_queue}) and sees only their own.")
    return (f"{flags} without --auth: anyone who can reach {reach} can generate images, see the gallery "
            "and delete images. Add --auth user:pass (or STUDIO_AUTH) to require a login.")


def browser_url(settings: Settings) -> str:
    """The address to open: all interfaces are reachable on 127.0.0.1 from this machine."""
    host = "127.0.0.1" if settings.host in ALL_INTERFACES else settings.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


class WarmUp:
    """Loads the default model once, so the first click does not wait for it.

    ``start`` is handed to ``build_app(on_page_load=...)``: it runs when a page has been drawn
    (gradio's load event, which the browser sends once the UI is up); ``arm()`` starts it anyway
    ``fallback_s`` later if no browser comes. Not as the server starts: importing diffusers and
    reading the model hold the GIL for seconds, and a page served meanwhile took about twice as
    long to appear.
    """

    def __init__(self, studio, fallback_s: float = WARM_UP_FALLBACK_S) -> None:  # noqa: ANN001 - Studio
        self._studio = studio
        self._fallback_s = fallback_s
        self._lock = threading.Lock()
        self.started = threading.Event()
        self.done = threading.Event()

    def arm(self) -> None:
        timer = threading.Timer(self._fallback_s, self.start)
        timer.daemon = True
        timer.start()

    def start(self) -> None:
        with self._lock:
            if self.started.is_set():
                return
            self.started.set()
        threading.Thread(target=self._run, name="warm-up", daemon=True).start()

    def _run(self) -> None:
        try:
            from diffusers.utils import logging as diffusers_logging
            from transformers.utils import logging as transformers_logging

            diffusers_logging.disable_progress_bar()     # the UI shows progress; the console stays quiet
            transformers_logging.disable_progress_bar()
            self._studio.warm_up()
        except Exception as err:  # noqa: BLE001 - the first generate reports it properly
            logging.getLogger("app").warning("could not preload the default model: %s", err)
        finally:
            self.done.set()
