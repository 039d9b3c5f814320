"""txt2img: prompt in, images out. Thin: the form makes a request, the Studio does the rest."""

from __future__ import annotations

import gradio as gr

from studio.requests import Task
from studio.service import Studio
from studio.ui.widgets import GPU_QUEUE, GenerationForm


def build(studio: Studio, ctx) -> GenerationForm:
    with gr.Tab("txt2img", id="txt2img"):
        form = GenerationForm.create(studio, Task.TXT2IMG)
        outputs = [form.images, form.seed_used, form.info]
        txt2img = form.handler(studio)
        form.generate.click(txt2img, inputs=form.inputs, outputs=outputs, api_name="txt2img",
                            concurrency_id=GPU_QUEUE, concurrency_limit=ctx.concurrency)
        form.prompt.submit(txt2img, inputs=form.inputs, outputs=outputs,
                           concurrency_id=GPU_QUEUE, concurrency_limit=ctx.concurrency, api_visibility="private")
    ctx.forms[Task.TXT2IMG] = form
    return form
