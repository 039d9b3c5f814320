"""build_app(studio, settings) -> gr.Blocks: the tabs, the one GPU queue, the launch options."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import gradio as gr

from studio.config import Settings
from studio.requests import Task
from studio.service import Studio
from studio.ui import serving

log = logging.getLogger(__name__)

# Tabs in display order: module name under studio.ui. A tab whose module is absent is skipped,
# so rooms can land one at a time. A tab module may also have ``connect(studio, ctx, built)``: it
# runs once every tab is built (with what its ``build`` returned), to wire events across tabs.
TABS = ("tab_txt2img", "tab_img2img", "tab_controlnet", "tab_ip_adapter", "tab_loras", "tab_gallery", "tab_pnginfo",
        "tab_models")
PUBLIC_HIDDEN = ("tab_models",)     # a visitor loads, unloads, frees or downloads no models
# Public mode: generations waiting in the studio's fair queue (studio/public.py), which orders them by
# visitor; beyond this many gradio's own queue holds them (a visitor has at most --max-queue in ours)
PUBLIC_WAITING = 16

CSS = """
/* small images (the demo model draws 64x64) are enlarged to the frame, whole and with sharp pixels:
   txt2img's images, the Gallery's Selected and Re-generated, PNG Info's preview */
.studio-images img { image-rendering: pixelated; object-fit: contain !important; }
#models-table th, #models-table th * { word-break: keep-all; overflow-wrap: normal; hyphens: none; }
#models-table td, #models-table td * { white-space: normal; overflow-wrap: anywhere; }
footer { display: none !important; }
"""


@dataclass
class UiContext:
    """What tabs share: settings, the generation forms (for "send to"), the tabs component."""

    settings: Settings
    concurrency: int = 1
    forms: dict = field(default_factory=dict)       # Task -> GenerationForm
    tabs: gr.Tabs | None = None

    def send_to_outputs(self, task: Task = Task.TXT2IMG) -> list:
        """Components a "send to <task>" event must list as outputs (the tab switch first)."""
        return [self.tabs] + self.forms[task].fill_outputs

    def send_to(self, fields: dict, task: Task = Task.TXT2IMG, image: str | None = None) -> list:
        """Values for ``send_to_outputs(task)``: switch to the tab and fill its widgets with the
        values (request field names) the form accepts; the others are named in a warning. ``image``
        (img2img, inpaint): the picture to start from."""
        form = self.forms[task]
        values = form.fill(fields) if image is None else form.fill(fields, image=image)
        return [gr.Tabs(selected=getattr(form, "tab_id", None) or task.value)] + values


def build_app(studio: Studio, settings: Settings, tabs: tuple[str, ...] = TABS,
              on_page_load: Callable[[], None] | None = None) -> gr.Blocks:
    """``on_page_load`` runs (off the queue, not in the API) each time a browser has drawn the page:
    app.py starts loading the default model there. Added here because every ``with demo:`` after
    the build rebuilds gradio's whole app (~0.1-0.2 s at start)."""
    public = getattr(studio, "public", None)
    ctx = UiContext(settings=settings, concurrency=max(settings.concurrency, PUBLIC_WAITING) if public
                    else settings.concurrency)
    if public is not None:
        tabs = tuple(name for name in tabs if name not in PUBLIC_HIDDEN)
    default = studio.registry.get(studio.registry.default_id())
    with gr.Blocks(title="Studio") as demo:
        # queue() rebuilds gradio's whole app: on the empty Blocks that is free, after the tabs
        # ~0.2 s of start-up. The limit is read when events run, so setting it first is the same.
        # Public mode: every listener of the GPU queue must allow PUBLIC_WAITING (gradio keeps the smallest
        # limit a concurrency_id is given), so the studio's fair queue, not gradio's FIFO, picks who goes next
        demo.queue(default_concurrency_limit=ctx.concurrency)
        gr.Markdown(f"## Studio  \nDefault model: **{default.label}** · device `{studio.device_label or settings.device}`")
        if public is not None:
            gr.Markdown(public_note(public.limits), elem_id="public-note")
        built = []
        with gr.Tabs() as ctx.tabs:
            for name in tabs:
                try:
                    module = importlib.import_module(f"studio.ui.{name}")
                except ModuleNotFoundError as err:
                    if err.name == f"studio.ui.{name}":
                        log.info("tab %s not present; skipped", name)
                        continue
                    raise
                built.append((module, module.build(studio, ctx)))
        for module, parts in built:
            if hasattr(module, "connect"):
                module.connect(studio, ctx, parts)
        if on_page_load is not None:
            demo.load(on_page_load, inputs=None, outputs=None, queue=False, api_visibility="private")
    demo.studio_context = ctx  # for tests
    return demo


def public_note(limits) -> str:  # noqa: ANN001 - studio.public.Limits
    return (f"Public studio: your images are yours alone (this browser's), and are kept on this server. Up to "
            f"{limits.max_size}x{limits.max_size}, {limits.max_steps} steps, {limits.max_images} images per request, "
            f"{limits.max_queue} waiting at a time.")


def launch_kwargs(settings: Settings, studio: Studio | None = None) -> dict:
    """``launch()``'s options. Public mode: files under outputs go only to the visitor who owns them,
    as ``studio``'s gallery says (without a studio, to nobody)."""
    store = getattr(getattr(studio, "sink", None), "store", None)
    owns = getattr(store, "owns_file", None) if settings.public else None
    return dict(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        auth=list(settings.auth) or None,
        allowed_paths=[str(settings.outputs_dir)],
        app_kwargs=serving.app_kwargs(settings.outputs_dir, public=settings.public, owns=owns),  # only its images
        css=CSS,
        theme=gr.themes.Soft(),
        ssr_mode=False,
        show_error=True,
    )
