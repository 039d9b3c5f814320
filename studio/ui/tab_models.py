"""Models tab: every model, where it is now (GPU / CPU / disk), its size and placement; load,
unload, download; free and total memory. Thin: the rows come from ``studio.models.report``."""

from __future__ import annotations

import gradio as gr

from studio.errors import ModelUnavailable
from studio.models import report
from studio.ui.errors import shown_as_gr_error
from studio.ui.widgets import GPU_QUEUE


def table(studio) -> list[list]:
    return report.rows(studio.models, studio.registry.entries()) + report.component_rows(studio.models)


def refresh(studio):
    return table(studio), report.summary(studio.models)


def load(studio, model_id: str):
    if not model_id:
        raise ModelUnavailable("pick a model first")
    cached = studio.models.load(studio.registry.require(model_id))
    return (*refresh(studio), f"Loaded **{model_id}**: {cached.where}, placement `{cached.placement}`, "
                              f"{cached.load_seconds:.1f} s")


def unload(studio, model_id: str):
    dropped = studio.models.unload(model_id) if model_id else False
    return (*refresh(studio), f"Unloaded **{model_id}**." if dropped else f"**{model_id or '-'}** was not loaded.")


def free_all(studio):
    studio.models.release_all()
    return (*refresh(studio), "Freed every model not in use.")


def download(studio, model_id: str, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - gradio's idiom
    entry = studio.registry.get(model_id)
    progress(0, desc=f"downloading {entry.spec.source}")
    path = studio.models.download(entry)
    return (*refresh(studio), f"Downloaded **{model_id}** to `{path}`.")


def build(studio, ctx) -> None:
    offline = getattr(getattr(ctx, "settings", None), "offline", False)
    with gr.Tab("Models", id="models") as tab:
        memory = gr.Markdown(report.summary(studio.models), label="Memory")
        # widths by content: short facts narrow, the location / note (how to get a model) wide enough to read
        rows = gr.Dataframe(value=table(studio), headers=list(report.ROW_HEADERS), interactive=False,
                            wrap=True, label="Models", elem_id="models-table",
                            column_widths=["11%", "12%", "8%", "10%", "11%", "10%", "38%"])
        with gr.Row():
            model = gr.Dropdown(choices=studio.registry.ids(), value=studio.registry.default_id(), label="Model",
                                scale=3)
            load_btn = gr.Button("Load", variant="primary")
            unload_btn = gr.Button("Unload")
            download_btn = gr.Button("Download", interactive=not offline)
            free_btn = gr.Button("Free all")
            refresh_btn = gr.Button("Refresh")
        status = gr.Markdown("Offline: downloads are off (start without --offline / HF_HUB_OFFLINE to download)."
                             if offline else "", label="Status")
        outputs = [rows, memory, status]

        # Load/unload move weights: they wait in the one GPU queue like a generation does.
        # API parameter names come from these signatures: plain "model"
        def load_model(model: str):
            return load(studio, model)

        def unload_model(model: str):
            return unload(studio, model)

        def free_models():
            return free_all(studio)

        def download_model(model: str, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
            return download(studio, model, progress)

        # Load/unload move weights: they wait in the one GPU queue like a generation does.
        load_btn.click(shown_as_gr_error(load_model), inputs=[model], outputs=outputs, concurrency_id=GPU_QUEUE,
                       api_name="load_model")
        unload_btn.click(shown_as_gr_error(unload_model), inputs=[model], outputs=outputs, concurrency_id=GPU_QUEUE,
                         api_name="unload_model")
        free_btn.click(shown_as_gr_error(free_models), outputs=outputs, concurrency_id=GPU_QUEUE, api_name="free_models")
        download_btn.click(shown_as_gr_error(download_model), inputs=[model], outputs=outputs, api_name="download_model")
        refresh_btn.click(shown_as_gr_error(lambda: (*refresh(studio), "")), outputs=outputs,
                          api_visibility="private")
        # what is loaded changes from other tabs: show the truth whenever the tab is opened
        tab.select(shown_as_gr_error(lambda: (*refresh(studio), gr.update(choices=studio.registry.ids()))),
                   outputs=[rows, memory, model], api_visibility="private")
