"""txt2img: prompt in, images out. Thin: the base section makes the request, the Studio does the rest."""

from __future__ import annotations

import gradio as gr

from studio.requests import GenerationRequest, Task
from studio.service import Studio
from studio.ui.errors import shown_as_gr_error
from studio.ui.form import GenerationForm


def build(studio: Studio, ctx) -> GenerationForm:
    with gr.Tab("txt2img", id="txt2img"):
        form = GenerationForm.create(studio, Task.TXT2IMG)

    @shown_as_gr_error
    def txt2img(prompt: str, negative_prompt: str = "", model: str = "", width: float | None = None,
                height: float | None = None, steps: float | None = None, guidance: float | None = None,
                seed: str = "-1", batch_count: float = 1, batch_size: float = 1, loras: str = "",
                request: gr.Request = None, progress=gr.Progress()):
        fields = form.base.request_fields(prompt=prompt, negative_prompt=negative_prompt, model=model, width=width,
                                          height=height, steps=steps, guidance=guidance, seed=seed,
                                          batch_count=batch_count, batch_size=batch_size, loras=loras)
        yield from form.run(GenerationRequest(task=Task.TXT2IMG, **fields), request, progress)

    form.wire(txt2img, api_name="txt2img", concurrency=ctx.concurrency)
    ctx.forms[Task.TXT2IMG] = form
    return form
