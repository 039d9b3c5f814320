"""txt2img: prompt in, images out. Thin: the form makes a request, the Studio does the rest."""

from __future__ import annotations

import gradio as gr

from studio.requests import Task
from studio.service import Studio
from studio.ui.widgets import GenerationForm


def build(studio: Studio, ctx) -> GenerationForm:
    with gr.Tab("txt2img", id="txt2img"):
        form = GenerationForm.create(studio, Task.TXT2IMG)
        form.wire_generate(studio, api_name="txt2img", concurrency=ctx.concurrency)
    ctx.forms[Task.TXT2IMG] = form
    return form
