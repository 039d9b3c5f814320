"""IP-Adapter: reference image(s) whose style, subject or face the picture takes, with a prompt that
can stay short. One adapter with its references (SD/SDXL: several, and a second adapter, e.g. plus
+ face; FLUX: one), its scale and, on SD/SDXL, where the scale goes (InstantStyle presets). FLUX
adapters work with true CFG (XLabs' recipe, on by default here). Optional: a start image (img2img;
with a mask, inpaint) and a ControlNet unit. Thin: ``studio.forms_ip`` makes the image prompts,
the Studio does the rest.

API ``/ip_adapter``: only ``prompt`` and ``image`` (one reference) are required, with the model's
default adapter; further references of that adapter in ``images``, further adapters as JSON in
``adapters`` with one reference each in ``adapter_images``; ControlNet units as JSON in
``controls`` with ``control_images`` (the fields of /controlnet's ``units``).
"""

from __future__ import annotations

import gradio as gr

from studio import forms, forms_controls, forms_ip
from studio.errors import InvalidRequest
from studio.requests import IP_BLOCKS, GenerationRequest, ImagePrompt, Task
from studio.service import Studio
from studio.ui.control_units import UnitWidgets
from studio.ui.errors import shown_as_gr_error
from studio.ui.form import GenerationForm
from studio.ui.widgets import NumberField

TRUE_CFG_INFO = ("FLUX adapters take the picture in with true CFG and a negative prompt (it may stay empty), as "
                 "XLabs recommends: 4 by default, 1 = off. It doubles the time per step.")
BLOCK_CHOICES = [(label, name) for name, label in IP_BLOCKS.items()]


def request_of(fields: dict, prompts: list[ImagePrompt], *, true_cfg_scale, init_image=None, mask_image=None,
               strength=None, controls=()) -> GenerationRequest:  # noqa: ANN001
    """txt2img with the image prompts; img2img with a start image, inpaint with its mask too."""
    if not prompts:
        raise InvalidRequest("image_prompts", "add a reference image (without one, use the txt2img tab)")
    task, extra = forms.start_image(init_image, mask_image, strength)
    return GenerationRequest(task=task, image_prompts=tuple(prompts), controls=tuple(controls),
                             true_cfg_scale=true_cfg_scale, **fields, **extra)


def _api_inputs() -> dict:
    """Hidden components whose values are the API's own parameters (the page has its own widgets)."""
    with gr.Group(visible=False):
        return dict(
            image=gr.Image(label="Reference image", type="filepath"),
            adapter=gr.Textbox(value="", label="IP-Adapter"),
            scale=NumberField(value=0.6, label="IP-Adapter scale"),
            blocks=gr.Textbox(value="all", label="Blocks"),
            images=gr.File(file_count="multiple", type="filepath", label="More references of this adapter"),
            adapters=gr.Textbox(value="", label="More adapters (JSON)"),
            adapter_images=gr.File(file_count="multiple", type="filepath", label="References of the more adapters"),
            true_cfg_scale=NumberField(value=None, label="True CFG scale"),
            init_image=gr.Image(label="Start image (img2img)", type="filepath"),
            mask_image=gr.Image(label="Mask (inpaint)", type="filepath"),
            strength=NumberField(value=None, label="Denoising strength"),
            controls=gr.Textbox(value="", label="ControlNet units (JSON)"),
            control_images=gr.File(file_count="multiple", type="filepath", label="Control images"),
        )


class SendTarget:
    """"Send to IP-Adapter" (gallery, PNG Info): the picture becomes the first reference; the
    parameters it carries fill the form (``ctx.send_to``)."""

    tab_id = "ip_adapter"

    def __init__(self, form: GenerationForm, references: gr.Gallery) -> None:
        self.form, self.references = form, references

    @property
    def fill_outputs(self) -> list:
        return [self.references, *self.form.base.fill_outputs]

    def fill(self, fields: dict, image: str | None = None) -> list:
        fields = {k: v for k, v in fields.items() if k not in ("width", "height")}
        return [gr.update() if image is None else [image], *self.form.base.fill(fields)]


def build(studio: Studio, ctx) -> GenerationForm:
    w: dict = {}
    unit: list[UnitWidgets] = []
    d = studio.ip_adapter_defaults()

    def adapter_row(n: int, t: str) -> None:
        with gr.Row():
            w[f"adapter{n}"] = gr.Dropdown(d["adapters"] or [("(none for this model)", "")], value=d["default"],
                                           label="IP-Adapter", allow_custom_value=True, scale=3,
                                           elem_id=f"{t}-adapter{n}")
            w[f"scale{n}"] = gr.Slider(0, 2, value=0.6, step=0.05, label="Scale", elem_id=f"{t}-scale{n}")
            w[f"blocks{n}"] = gr.Dropdown(BLOCK_CHOICES, value="all", label="Layers (SD/SDXL)", visible=d["blocks"],
                                          info="InstantStyle: style only, or layout only", elem_id=f"{t}-blocks{n}")

    def section(t: str) -> None:
        w["refs1"] = gr.Gallery(label="Reference image(s)", type="filepath", interactive=True, columns=4, height=220,
                                file_types=["image"], elem_id=f"{t}-references", elem_classes=["studio-images"])
        adapter_row(1, t)
        w["true_cfg"] = NumberField(value=d["true_cfg_scale"], label="True CFG scale (FLUX)", info=TRUE_CFG_INFO,
                                    visible=d["true_cfg_scale"] is not None, elem_id=f"{t}-true-cfg")
        with gr.Accordion("Second adapter (SD/SDXL; e.g. plus + face)", open=False, visible=d["max_adapters"] > 1,
                          elem_id=f"{t}-second") as w["second"]:
            w["refs2"] = gr.Gallery(label="Its reference image(s)", type="filepath", interactive=True, columns=4,
                                    height=160, file_types=["image"], elem_id=f"{t}-references2")
            adapter_row(2, t)
        with gr.Accordion("Start from an image (img2img; with a mask: inpaint)", open=False):
            with gr.Row():
                w["init_image"] = gr.Image(label="Start image", type="filepath", elem_id=f"{t}-init-image")
                w["mask_image"] = gr.Image(label="Mask (white = redraw)", type="filepath", elem_id=f"{t}-mask-image")
            w["strength"] = gr.Slider(0.05, 1.0, value=0.75, step=0.05, label="Denoising strength")
        with gr.Accordion("ControlNet (optional: a unit with an image is used)", open=False):
            unit.append(UnitWidgets.create(studio, 0, t))

    def prompts_of(values: dict) -> list[ImagePrompt]:
        out = []
        for n in (1, 2):
            if forms_ip.paths(values[f"refs{n}"]) or n == 1:
                out.append(forms_ip.image_prompt(n - 1, images=values[f"refs{n}"], adapter=values[f"adapter{n}"],
                                                 scale=values[f"scale{n}"], blocks=values[f"blocks{n}"]))
        return out

    @shown_as_gr_error
    def generate(data: dict, request: gr.Request = None, progress=gr.Progress()):
        base = form.base
        fields = base.request_fields(**{name: data[c] for name, c in base.fields.items()})
        values = {k: data[c] for k, c in w.items() if k != "second"}
        unit_values = {name: data[c] for name, c in unit[0].fields.items()}
        controls = [unit[0].unit(unit_values)] if unit_values["image"] else []
        yield from form.run(request_of(fields, prompts_of(values),
                                       true_cfg_scale=forms_ip.true_cfg(values["true_cfg"], None),
                                       init_image=values["init_image"], mask_image=values["mask_image"],
                                       strength=values["strength"], controls=[c for c in controls if c]),
                            request, progress)

    @shown_as_gr_error
    def ip_adapter(prompt: str, image: str, negative_prompt: str = "", model: str = "", width: float | None = None,
                   height: float | None = None, steps: float | None = None, guidance: float | None = None,
                   seed: float = -1, batch_count: float = 1, batch_size: float = 1, loras: str = "",
                   adapter: str = "", scale: float = 0.6, blocks: str = "all", images: list | None = None,
                   adapters: str = "", adapter_images: list | None = None, true_cfg_scale: float | None = None,
                   init_image: str | None = None, mask_image: str | None = None, strength: float | None = None,
                   controls: str = "", control_images: list | None = None,
                   request: gr.Request = None, progress=gr.Progress()):
        """IP-Adapter: the prompt drawn with the reference image's style, subject or colours (the
        model's default adapter unless ``adapter`` names one). FLUX: true CFG 4 unless
        ``true_cfg_scale`` says otherwise (1 = off). More adapters (SD/SDXL): ``adapters`` = a JSON list
        of {adapter, scale, blocks}, one reference each in ``adapter_images``."""
        base = form.base
        fields = base.request_fields(prompt=prompt, negative_prompt=negative_prompt, model=model, width=width,
                                     height=height, steps=steps, guidance=guidance, seed=seed,
                                     batch_count=batch_count, batch_size=batch_size, loras=loras)
        if not image:
            raise InvalidRequest("image", "the reference image is required: the picture to take the style, subject "
                                          "or face from")
        first = forms_ip.image_prompt(0, images=[image, *forms_ip.paths(images)], adapter=adapter, scale=scale,
                                      blocks=blocks)
        more = forms_ip.prompts_from_json(adapters, adapter_images)
        units = forms_controls.units_from_json(controls, control_images, first=0)
        default_cfg = studio.ip_adapter_defaults(fields["model_id"])["true_cfg_scale"]
        yield from form.run(request_of(fields, [first, *more], true_cfg_scale=forms_ip.true_cfg(true_cfg_scale,
                                                                                                 default_cfg),
                                       init_image=init_image, mask_image=mask_image, strength=strength,
                                       controls=units), request, progress)

    with gr.Tab("IP-Adapter", id="ip_adapter"):
        form = GenerationForm.create(studio, Task.TXT2IMG, section, prefix="ip_adapter")
        api, base = _api_inputs(), form.base
        ui_inputs = {*base.inputs, *(c for k, c in w.items() if k != "second"), *unit[0].inputs}
        api_inputs = [base.fields["prompt"], api["image"], *(base.fields[n] for n in list(base.fields)[1:]),
                      *(api[n] for n in list(api)[1:])]
        form.wire(generate, api_name=None, concurrency=ctx.concurrency, inputs=ui_inputs)
        form.wire_api(ip_adapter, gr.Button(visible=False, elem_id="ip-adapter-api"), api_name="ip_adapter",
                      concurrency=ctx.concurrency, inputs=api_inputs)
        unit[0].wire(studio, base.fields)

        def on_model(model_id: str):
            try:
                got = studio.ip_adapter_defaults(model_id)
            except Exception:  # noqa: BLE001 - an unknown model: Generate says why
                return [gr.update()] * 6
            choices = got["adapters"] or [("(none for this model)", "")]
            return [gr.update(choices=choices, value=got["default"]), gr.update(choices=choices, value=got["default"]),
                    gr.update(visible=got["blocks"]), gr.update(visible=got["blocks"]),
                    gr.update(visible=got["true_cfg_scale"] is not None, value=got["true_cfg_scale"]),
                    gr.update(visible=got["max_adapters"] > 1)]

        base.fields["model"].change(on_model, base.fields["model"],
                                    [w["adapter1"], w["adapter2"], w["blocks1"], w["blocks2"], w["true_cfg"],
                                     w["second"]], api_visibility="private")
    ctx.forms["ip_adapter"] = SendTarget(form, w["refs1"])
    return form
