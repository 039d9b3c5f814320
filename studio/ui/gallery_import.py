"""The Gallery's "Import a folder" section and the ``/gallery_import`` endpoint (thin: the work is
``studio.gallery.import_folder``).

A folder is named by its path on the machine the studio runs on, so it is offered only when no one
else can reach the studio (a loopback ``--host``, no ``--share``), or with ``--allow-import-paths``
(``Settings.imports_allowed``); otherwise the section says how to turn it on and there is no endpoint.
Progress shows files/s and the time left; Cancel stops after the current file, keeping what is in.
"""

from __future__ import annotations

import threading

import gradio as gr

from studio.errors import InvalidRequest
from studio.gallery.import_folder import ImportProgress, import_folder
from studio.gallery.store import GalleryStore
from studio.ui.errors import shown_as_gr_error

OFF = ("Importing a folder by its path is off: this studio can be reached from other machines (--listen, "
       "--share or --host). Start it with --allow-import-paths to offer it anyway, or run "
       "`python -m studio.gallery.import_folder DIR` on this machine.")


def build(store: GalleryStore, ctx) -> None:
    settings = getattr(ctx, "settings", None)
    allowed = settings is not None and settings.imports_allowed
    with gr.Accordion("Import a folder (A1111, Forge, Fooocus, ComfyUI, InvokeAI, SwarmUI, NovelAI)", open=False):
        if not allowed:
            gr.Markdown(OFF, elem_id="gallery-import-off")
            return
        with gr.Row():
            # no value: the API's one required parameter
            folder = gr.Textbox(label="Folder", placeholder="/home/me/stable-diffusion-webui/outputs",
                                info="a folder on this machine; its sub-folders are imported too", scale=4,
                                elem_id="gallery-import-folder")
            link = gr.Checkbox(value=False, label="Link instead of copying",
                               info="no second copy on disk (same disk only)")
            include_plain = gr.Checkbox(value=True, label="Images without parameters too")
        with gr.Row():
            start = gr.Button("Import", variant="primary", elem_id="gallery-import-start")
            stop = gr.Button("Cancel import", variant="stop", elem_id="gallery-import-cancel")
        status = gr.Markdown(elem_id="gallery-import-status", label="Status")
        counts = gr.JSON(label="Counts", visible=False)
    cancels: dict[str, threading.Event] = {}
    lock = threading.Lock()

    @shown_as_gr_error
    def gallery_import(folder: str, link: bool = False, include_plain: bool = True, request: gr.Request = None,
                       progress=gr.Progress()):
        """Import every image under ``folder`` (a path on the studio's machine): how many came in, were
        already there, had no parameters, failed (and why)."""
        if not (folder or "").strip():
            raise InvalidRequest("folder", "type the path of a folder on this machine")
        key = getattr(request, "session_hash", None) or "api"
        with lock:
            cancel = cancels[key] = threading.Event()

        def shown(step: ImportProgress) -> None:
            progress((step.done, max(1, step.total)), desc=step.line(), unit="files")

        report = import_folder(store, folder.strip(), link=bool(link), plain=bool(include_plain), cancel=cancel,
                               on_progress=shown)
        return report.counts(), report.summary().replace("\n", "  \n")

    def cancel_import(request: gr.Request):
        with lock:
            event = cancels.get(request.session_hash)
        if event is not None:
            event.set()
            gr.Info("Cancelling: stops after the current file; what is imported stays.")

    start.click(gallery_import, [folder, link, include_plain], [counts, status], api_name="gallery_import",
                concurrency_id="import", concurrency_limit=1, show_progress_on=[status])
    stop.click(cancel_import, None, None, queue=False, api_visibility="private")
