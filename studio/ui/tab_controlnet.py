"""ControlNet: up to three control units (image, preprocessor with a live map preview, net, mode,
scale, guidance window, resolution) on txt2img, or on img2img / inpaint when a start image (and a
mask) is given. Thin: the units become ``ControlUnit``s (``studio.forms_controls``), the Studio
does the rest.

API ``/controlnet``: only ``prompt`` and ``image`` are required (one unit: type canny, the model's
own net for it); the first unit's settings are plain parameters, further units a JSON list in
``units`` with their images in ``unit_images``. The page's three units feed the Generate button's
own handler (``generate``); the API endpoint reads hidden inputs (``form.wire_api``).
"""

from __future__ import annotations

import gradio as gr

from studio import forms, forms_controls
from studio.errors import InvalidRequest
from studio.requests import MAX_CONTROLS, ControlUnit, GenerationRequest, Task
from studio.service import Studio
from studio.ui.control_units import UnitWidgets
from studio.ui.errors import shown_as_gr_error
from studio.ui.form import GenerationForm
from studio.ui.widgets import NumberField


def request_of(fields: dict, units: list[ControlUnit], init_image, mask_image, strength) -> GenerationRequest:  # noqa: ANN001
    """The request: txt2img with the units, img2img with a start image, inpaint with its mask too."""
    if not units:
        raise InvalidRequest("controls", "enable at least one ControlNet unit and give it an image "
                                         "(without one, use the txt2img tab)")
    task, extra = forms.start_image(init_image, mask_image, strength)
    return GenerationRequest(task=task, controls=tuple(units), **fields, **extra)


def _api_inputs() -> dict:
    """Hidden components whose values are the API's own parameters (the page has its own widgets)."""
    with gr.Group(visible=False):
        return dict(
            image=gr.Image(label="Control image", type="filepath"),
            control_type=gr.Textbox(value="canny", label="Control type"),
            controlnet=gr.Textbox(value="", label="ControlNet"),
            control_mode=gr.Textbox(value="", label="Control mode"),
            preprocessor=gr.Textbox(value="", label="Preprocessor"),
            scale=NumberField(value=1.0, label="Conditioning scale"),
            start=NumberField(value=0.0, label="Guidance start"),
            end=NumberField(value=1.0, label="Guidance end"),
            resolution=NumberField(value=512, label="Preprocessor resolution"),
            pixel_perfect=gr.Checkbox(value=False, label="Pixel perfect"),
            canny_low=NumberField(value=100, label="Canny low threshold"),
            canny_high=NumberField(value=200, label="Canny high threshold"),
            units=gr.Textbox(value="", label="More units (JSON)"),
            unit_images=gr.File(file_count="multiple", type="filepath", label="Images of the more units"),
            init_image=gr.Image(label="Start image (img2img)", type="filepath"),
            mask_image=gr.Image(label="Mask (inpaint)", type="filepath"),
            strength=NumberField(value=None, label="Denoising strength"),
        )


def build(studio: Studio, ctx) -> GenerationForm:
    units: list[UnitWidgets] = []
    start: dict = {}

    def section(t: str) -> None:
        for i in range(MAX_CONTROLS):
            units.append(UnitWidgets.create(studio, i, t))
        with gr.Accordion("Start from an image (img2img; with a mask: inpaint)", open=False):
            with gr.Row():
                start["init_image"] = gr.Image(label="Start image", type="filepath", elem_id=f"{t}-init-image")
                start["mask_image"] = gr.Image(label="Mask (white = redraw)", type="filepath",
                                               elem_id=f"{t}-mask-image")
            start["strength"] = gr.Slider(0.05, 1.0, value=0.75, step=0.05, label="Denoising strength",
                                          elem_id=f"{t}-strength")

    @shown_as_gr_error
    def controlnet(prompt: str, image: str, negative_prompt: str = "", model: str = "", width: float | None = None,
                   height: float | None = None, steps: float | None = None, guidance: float | None = None,
                   seed: float = -1, batch_count: float = 1, batch_size: float = 1, loras: str = "",
                   control_type: str = "canny", controlnet: str = "", control_mode: str = "", preprocessor: str = "",
                   scale: float = 1.0, start: float = 0.0, end: float = 1.0, resolution: float = 512,
                   pixel_perfect: bool = False, canny_low: float | None = None, canny_high: float | None = None,
                   units: str = "", unit_images: list | None = None, init_image: str | None = None,
                   mask_image: str | None = None, strength: float | None = None,
                   request: gr.Request = None, progress=gr.Progress()):
        """ControlNet: the prompt drawn with the control image's map (canny by default). More units:
        ``units`` = a JSON list of {type, model, mode, preprocessor, scale, start, end, resolution,
        pixel_perfect, threshold_a, threshold_b}, one image each in ``unit_images``."""
        base = form.base
        fields = base.request_fields(prompt=prompt, negative_prompt=negative_prompt, model=model, width=width,
                                     height=height, steps=steps, guidance=guidance, seed=seed,
                                     batch_count=batch_count, batch_size=batch_size, loras=loras)
        first = forms_controls.unit(0, image=image, type=control_type, model=controlnet, mode=control_mode,
                                    preprocessor=preprocessor, scale=scale, start=start, end=end,
                                    resolution=resolution, pixel_perfect=pixel_perfect, threshold_a=canny_low,
                                    threshold_b=canny_high)
        more = forms_controls.units_from_json(units, unit_images)
        yield from form.run(request_of(fields, [first, *more], init_image, mask_image, strength), request, progress)

    @shown_as_gr_error
    def generate(data: dict, request: gr.Request = None, progress=gr.Progress()):
        base = form.base
        fields = base.request_fields(**{name: data[c] for name, c in base.fields.items()})
        made = [w.unit({name: data[c] for name, c in w.fields.items()}) for w in units]
        yield from form.run(request_of(fields, [u for u in made if u is not None],
                                       *(data[start[k]] for k in ("init_image", "mask_image", "strength"))),
                            request, progress)

    with gr.Tab("ControlNet", id="controlnet"):
        form = GenerationForm.create(studio, Task.TXT2IMG, section, prefix="controlnet")
        api, base = _api_inputs(), form.base
        ui_inputs = {*base.inputs, *(c for w in units for c in w.inputs), *start.values()}
        api_inputs = [base.fields["prompt"], api["image"], *(base.fields[n] for n in list(base.fields)[1:]),
                      *(api[n] for n in list(api)[1:])]
        form.wire(generate, api_name=None, concurrency=ctx.concurrency, inputs=ui_inputs)
        form.wire_api(controlnet, gr.Button(visible=False, elem_id="controlnet-api"), api_name="controlnet",
                      concurrency=ctx.concurrency, inputs=api_inputs)
        for w in units:
            w.wire(studio, base.fields)
    return form
