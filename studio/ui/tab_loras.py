"""LoRAs: the library (every file in models/loras/, what it is, whether it fits the model), the
mixer (weights and switches; the mix is every generating tab's ``loras`` text), trigger words,
presets, fuse for speed, merge into a checkpoint. Thin: ``studio.loras`` does the work.

``build`` makes the widgets; ``connect`` (called by ``build_app`` once every tab exists) wires
them to the generating forms: the mixer writes each form's LoRAs field, a LoRAs field typed or
filled ("send to") comes back into the mixer, and every prompt's ``<lora:...>`` tags are shown in
the mixer beside its own entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio import forms
from studio.errors import InvalidRequest
from studio.gallery.imagefile import open_image
from studio.loras import mix, view
from studio.loras.mix import MixEntry
from studio.requests import LIMITS
from studio.service import Studio
from studio.ui.errors import shown_as_gr_error
from studio.ui.widgets import GPU_QUEUE, NumberField, limits_text

PRIVATE = dict(api_visibility="private")


@dataclass
class LoraTab:
    entries: gr.State
    tags: gr.State
    search: gr.Textbox
    family: gr.Dropdown
    model: gr.Dropdown
    table: gr.Dataframe
    pick: gr.Dropdown
    weight: gr.Number
    add: gr.Button
    details: gr.Markdown
    preview: gr.Image
    target: gr.Radio
    trigger: gr.Button
    mix_table: gr.Dataframe
    toggle: gr.Button
    remove: gr.Button
    clear: gr.Button
    mix_text: gr.Textbox
    fuse: gr.Checkbox
    preset_name: gr.Textbox
    preset_save: gr.Button
    presets: gr.Dropdown
    preset_load: gr.Button
    preset_delete: gr.Button
    merge_name: gr.Textbox
    merge: gr.Button
    memory: gr.Markdown
    status: gr.Markdown
    api_list: gr.Button
    api_out: gr.JSON
    tab: gr.Tab


def _family(studio: Studio, model_id: str):
    try:
        return studio.registry.get(model_id).family
    except Exception:  # noqa: BLE001 - an unknown model: show the library without "fits"
        return None


def build(studio: Studio, ctx) -> LoraTab:
    registry = studio.registry
    default = registry.default_id()
    lo, hi = LIMITS["lora_weight"]
    with gr.Tab("LoRAs", id="loras") as tab:
        entries, tags = gr.State(()), gr.State({})
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row():
                    search = gr.Textbox(value="", label="Search", placeholder="name, title, trigger word, tag",
                                        elem_id="loras-search", scale=3)
                    family = gr.Dropdown(view.family_choices(), value="", label="Family", elem_id="loras-family",
                                         scale=2)
                    model = gr.Dropdown(registry.ids(), value=default, label="For model", elem_id="loras-model",
                                        allow_custom_value=True, scale=2,
                                        info="Fits: whether each LoRA can be applied to it.")
                table = gr.Dataframe(value=view.library_rows(registry.lora_library.scan(), _family(studio, default)),
                                     headers=list(view.LIBRARY_HEADERS), interactive=False, wrap=True,
                                     label="Library (models/loras/)", elem_id="loras-table",
                                     column_widths=["24%", "14%", "7%", "7%", "12%", "17%", "19%"], max_height=640)
                with gr.Row():
                    pick = gr.Dropdown(registry.lora_names(), value=None, label="LoRA", allow_custom_value=True,
                                       elem_id="loras-pick", scale=3,
                                       info="From the library, or a hub LoRA: owner/repo/weights.safetensors")
                    weight = NumberField(value=1.0, step=0.05, label="Weight", elem_id="loras-weight", scale=1,
                                         info=f"{limits_text('lora_weight')}")
                    add = gr.Button("Add / set weight", variant="primary", elem_id="loras-add", scale=1)
                with gr.Row():
                    details = gr.Markdown("Pick a LoRA to see what it is.", elem_id="loras-details")
                    preview = gr.Image(label="Preview", interactive=False, height=160, visible=True,
                                       elem_id="loras-preview", elem_classes=["studio-images"])
                with gr.Row():
                    target = gr.Radio(["txt2img"], value="txt2img", label="Insert into the prompt of",
                                      elem_id="loras-target")
                    trigger = gr.Button("Insert trigger words", elem_id="loras-trigger")
            with gr.Column(scale=2):
                mix_table = gr.Dataframe(value=[], headers=list(view.MIX_HEADERS), interactive=False, wrap=True,
                                         label="Mix", elem_id="loras-mix")
                with gr.Row():
                    toggle = gr.Button("On / off", elem_id="loras-toggle", size="sm")
                    remove = gr.Button("Remove", elem_id="loras-remove", size="sm")
                    clear = gr.Button("Clear", elem_id="loras-clear", size="sm")
                mix_text = gr.Textbox(value="", label="The mix as every tab's LoRAs field", interactive=False,
                                      elem_id="loras-mix-text", info=f"name:weight ({lo}..{hi}); entries that are off "
                                                                     "stay here and out of the field.")
                fuse = gr.Checkbox(value=studio.lora_fuse, label="Fuse for speed", elem_id="loras-fuse",
                                   info="Fuse the mix into the weights (faster steps; the first image of a new mix "
                                        "pays for it, and the changed weights are kept to restore). Server-wide.")
                with gr.Accordion("Presets", open=False):
                    with gr.Row():
                        preset_name = gr.Textbox(value="", label="Name", elem_id="loras-preset-name", scale=3)
                        preset_save = gr.Button("Save the mix", elem_id="loras-preset-save", scale=1)
                    with gr.Row():
                        presets = gr.Dropdown(registry.lora_presets.names() if _readable(registry) else [],
                                              value=None, label="Saved", elem_id="loras-presets", scale=3)
                        preset_load = gr.Button("Load", elem_id="loras-preset-load", scale=1)
                        preset_delete = gr.Button("Delete", elem_id="loras-preset-delete", scale=1)
                with gr.Accordion("Merge into a checkpoint", open=False):
                    merge_name = gr.Textbox(value="", label="New checkpoint name", elem_id="loras-merge-name",
                                            info="Saved in models/checkpoints/ with the mix merged into the model "
                                                 "chosen above; then listed by every model picker (↻).")
                    merge = gr.Button("Merge", elem_id="loras-merge")
                memory = gr.Markdown(view.memory_line(studio.models.lora_rows()), elem_id="loras-memory")
                status = gr.Markdown("", elem_id="loras-status")
        api_list = gr.Button(visible=False)
        api_out = gr.JSON(visible=False, label="LoRAs")
    return LoraTab(entries, tags, search, family, model, table, pick, weight, add, details, preview, target, trigger,
                   mix_table, toggle, remove, clear, mix_text, fuse, preset_name, preset_save, presets, preset_load,
                   preset_delete, merge_name, merge, memory, status, api_list, api_out, tab)


def _readable(registry) -> bool:
    try:
        registry.lora_presets.names()
        return True
    except Exception:  # noqa: BLE001 - a damaged preset file is said when used, not at start
        return False


def _preview(info):
    if info is None or info.preview is None:
        return None
    try:
        with open_image(info.preview, field="preview") as image:
            shown = image.convert("RGB")
            shown.thumbnail((512, 512))
            return shown
    except InvalidRequest:
        return None


def connect(studio: Studio, ctx, t: LoraTab) -> None:
    """Wire the tab to every generating form (see the module doc)."""
    from studio.ui.lora_mixer import wire

    wire(studio, ctx, t)
