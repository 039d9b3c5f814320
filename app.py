"""Composition root: CLI + environment -> Settings -> services -> UI -> launch.

    python app.py [--listen] [--port 7860] [--share] [--auth user:pass] [--models-dir DIR]
                  [--outputs-dir DIR] [--device auto|cuda|cpu|mps] [--dtype auto|float32|...]
                  [--offline] [--default-model ID]

Every flag has an environment twin: STUDIO_<FLAG> (e.g. STUDIO_PORT=7861).

Order matters for the first minute: flags and the port are checked before anything heavy is
imported (a mistake is one line, exit status 2); diffusers and transformers are imported only
when the default model loads, in the background, once the first page has been drawn.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def main(argv: list[str] | None = None) -> int:
    from studio import hosting, startup
    from studio.config import settings_from
    from studio.errors import StudioError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "httpx", "urllib3", "diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = settings_from(sys.argv[1:] if argv is None else argv)
        startup.check_share(settings)
        if warning := startup.exposure_warning(settings):
            print(f"app.py: warning: {warning}", file=sys.stderr, flush=True)
        startup.check_address(settings.host, settings.port)
        startup.check_outputs_dir(settings.outputs_dir)
    except StudioError as err:
        return _user_error(err)
    if settings.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"  # before diffusers/huggingface_hub are imported
    if settings.quantize != "nf4":
        # diffusers imports bitsandbytes (if installed) at every model load, and on a CPU it warns
        # "pip install kernels". Only NF4 needs it: for this process it is not there otherwise.
        sys.modules.setdefault("bitsandbytes", None)

    from studio.ui.app import build_app, launch_kwargs
    from studio.wiring import build_studio

    try:
        studio = build_studio(settings)
        # on a Space nobody waits for a browser: load the default model as soon as the UI serves
        warm_up = startup.WarmUp(studio, fallback_s=2.0) if hosting.on_space() else startup.WarmUp(studio)
        demo = build_app(studio, settings, on_page_load=warm_up.start)   # --default-model is checked here
    except StudioError as err:
        return _user_error(err)
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):            # gradio's share-link failure is a page of text
            demo.launch(prevent_thread_lock=True, quiet=True, **launch_kwargs(settings, studio))
    except OSError as err:
        if "Cannot find empty port" not in str(err):     # taken since check_address: a race, same message
            raise
        demo.close()
        print(f"app.py: {startup.port_in_use_message(settings.host, settings.port)}", file=sys.stderr)
        return 2
    print(f"Studio on {startup.browser_url(settings)}  (models: {settings.models_dir}, outputs: {settings.outputs_dir}, "
          f"default model: {studio.registry.default_id()})", flush=True)
    if settings.share:
        print(startup.share_line(demo.share_url, said.getvalue(), settings), flush=True)
    warm_up.arm()
    demo.block_thread()
    return 0


def _user_error(err: Exception) -> int:
    """A mistake in the flags or the folders: one line, no traceback, exit status 2."""
    print(f"app.py: {err}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
