"""Composition root: CLI + environment -> Settings -> services -> UI -> launch.

    python app.py [--listen] [--port 7860] [--share] [--auth user:pass] [--models-dir DIR]
                  [--outputs-dir DIR] [--device auto|cuda|cpu|mps] [--dtype auto|float32|...]
                  [--offline] [--default-model ID]

Every flag has an environment twin: STUDIO_<FLAG> (e.g. STUDIO_PORT=7861).
"""

from __future__ import annotations

import logging
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def main(argv: list[str] | None = None) -> int:
    from studio.config import settings_from
    from studio.errors import StudioError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "httpx", "urllib3", "diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = settings_from(sys.argv[1:] if argv is None else argv)
    except StudioError as err:
        print(f"app.py: {err}", file=sys.stderr)
        return 2
    if settings.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"  # before diffusers/huggingface_hub are imported

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    from studio.ui.app import build_app, launch_kwargs
    from studio.wiring import build_studio

    try:
        studio = build_studio(settings)
    except StudioError as err:
        print(f"app.py: {err}", file=sys.stderr)
        return 2
    demo = build_app(studio, settings)
    _warm_up_in_background(studio)
    print(f"Studio on http://{settings.host}:{settings.port}  (models: {settings.models_dir}, "
          f"outputs: {settings.outputs_dir}, default model: {studio.registry.default_id()})", flush=True)
    demo.launch(**launch_kwargs(settings))
    return 0


def _warm_up_in_background(studio) -> None:
    """Load the default model while the browser opens, so the first click does not wait."""
    import threading

    def run() -> None:
        try:
            studio.warm_up()
        except Exception as err:  # noqa: BLE001 - the first generate reports it properly
            logging.getLogger("app").warning("could not preload the default model: %s", err)

    threading.Thread(target=run, name="warm-up", daemon=True).start()


if __name__ == "__main__":
    raise SystemExit(main())
