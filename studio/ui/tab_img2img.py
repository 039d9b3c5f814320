"""img2img: start from an image. Sub-tabs as A1111's: img2img, Sketch, Inpaint (paint the mask),
Inpaint upload, Outpaint; one Generate, the sub-tab says what it does. Thin: the widgets become a
request (``request_for``), the Studio does the rest (``Studio.outpaint`` builds the padded canvas).

API clients get plain image files instead of the editors: ``/img2img`` (prompt, image),
``/inpaint`` (prompt, image, mask: white = redraw), ``/outpaint`` (prompt, image, left/right/up/down).
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from studio import forms
from studio.engine.inputs import OUTPAINT_FILLS
from studio.errors import InvalidRequest
from studio.gallery import browse
from studio.gallery.files import sha256_bytes
from studio.requests import INPAINT_AREAS, LIMITS, MASK_MODES, RESIZE_MODES, SCALE_LIMITS, GenerationRequest, Task
from studio.service import Studio
from studio.ui.errors import shown_as_gr_error
from studio.ui.visitors import owner_of
from studio.ui.form import BASE, GenerationForm

MODES = {"img2img": "img2img", "sketch": "Sketch", "inpaint": "Inpaint", "inpaint_upload": "Inpaint upload",
         "outpaint": "Outpaint"}
MASKED = ("inpaint", "inpaint_upload", "outpaint")          # sub-tabs that inpaint (the mask settings show)
SETTINGS = ("strength", "resize_mode", "scale_by", "mask_blur", "mask_mode", "inpaint_area", "mask_padding")
SIDES = ("left", "right", "up", "down")
API_NAMES = {"init_image": "image", "mask_image": "mask"}   # request field -> what the UI and API call it
NEED_IMAGE = "upload, paste or drop an image first"


def unchecked(component):
    """The value reaches the handler as sent (no gradio bound or choice check, whose message names no
    field): the request checks it and names the field, as for typed numbers (``NumberField``)."""
    component.preprocess = lambda payload: payload
    return component


# -- editor values -> files (pure: tested without a browser) ------------------------------------------
def save_png(image: Image.Image, folder: Path) -> str:
    """``image`` as ``<folder>/<sha256>.png`` (once per content); its path."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    path = Path(folder) / f"{sha256_bytes(data)}.png"
    if not path.is_file():
        path.write_bytes(data)
    return str(path)


def flat(image: Image.Image) -> Image.Image:
    """An editor image as RGB: transparency over white (the canvas shows white there)."""
    if "A" not in image.getbands():
        return image.convert("RGB")
    return Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA")).convert("RGB")


def strokes(value: dict | None) -> Image.Image | None:
    """The painted strokes of an editor value as a mask (white where any layer has paint), or None."""
    layers = [layer for layer in (value or {}).get("layers") or [] if layer is not None]
    if not layers:
        return None
    size = layers[0].size
    painted = np.zeros(size[::-1], dtype=bool)
    for layer in layers:
        alpha = np.asarray(layer.convert("RGBA").resize(size))[..., 3]
        painted |= alpha > 0
    return Image.fromarray(np.where(painted, 255, 0).astype(np.uint8), "L") if painted.any() else None


def editor_value(path: str | None) -> dict | None:
    """An editor value that starts from the picture at ``path`` (for "send to inpaint")."""
    return {"background": path, "layers": [], "composite": path} if path else None


def renamed(err: InvalidRequest) -> InvalidRequest:
    """``init_image: ...`` -> ``image: ...``: errors name the field as the tab and the API call it."""
    name = API_NAMES.get(err.field)
    return InvalidRequest(name, str(err)[len(err.field) + 2:]) if name else err


# -- the section ------------------------------------------------------------------------------------
@dataclass
class Section:
    w: dict                      # every widget by name (MODES' images, SETTINGS, SIDES, fill, ...)

    def __getattr__(self, name: str):
        try:
            return self.w[name]
        except KeyError:
            raise AttributeError(name) from None

    @classmethod
    def create(cls, t: str) -> Section:
        w: dict = {"mode": gr.State("img2img")}
        upload = dict(type="filepath", image_mode=None, sources=["upload", "clipboard"], height=320,
                      elem_classes=["studio-images"])
        editor = dict(type="pil", sources=("upload", "clipboard"), transforms=(), height=380,
                      layers=False, elem_classes=["studio-images"])
        with gr.Tabs(elem_id=f"{t}-modes") as w["tabs"]:
            with gr.Tab(MODES["img2img"], id="img2img") as w["tab_img2img"]:
                w["image"] = gr.Image(label="Image (upload, paste or drop)", elem_id=f"{t}-image", **upload)
            with gr.Tab(MODES["sketch"], id="sketch") as w["tab_sketch"]:
                w["sketch"] = gr.ImageEditor(label="Sketch: draw coloured strokes on the image", elem_id=f"{t}-sketch",
                                             brush=gr.Brush(color_mode="defaults"), **editor)
            with gr.Tab(MODES["inpaint"], id="inpaint") as w["tab_inpaint"]:
                w["paint"] = gr.ImageEditor(label="Inpaint: paint over what to redraw", elem_id=f"{t}-paint",
                                            brush=gr.Brush(colors=["rgba(255, 0, 255, 0.75)"], color_mode="fixed"),
                                            **editor)
            with gr.Tab(MODES["inpaint_upload"], id="inpaint_upload") as w["tab_inpaint_upload"]:
                with gr.Row():
                    w["upload_image"] = gr.Image(label="Image", elem_id=f"{t}-upload-image", **upload)
                    w["upload_mask"] = gr.Image(label="Mask (white = redraw)", elem_id=f"{t}-upload-mask", **upload)
            with gr.Tab(MODES["outpaint"], id="outpaint") as w["tab_outpaint"]:
                w["outpaint_image"] = gr.Image(label="Image to extend", elem_id=f"{t}-outpaint-image", **upload)
                lo, hi = LIMITS["outpaint"]
                with gr.Row():
                    for side in SIDES:
                        w[side] = unchecked(gr.Slider(lo, 1024, value=0, step=16, label=f"Add {side} (px)",
                                                      info=f"{lo}–{hi}", elem_id=f"{t}-{side}", min_width=120))
                w["fill"] = unchecked(gr.Radio([(label, key) for key, label in OUTPAINT_FILLS.items()], value="edge",
                                               label="Fill the new area with", elem_id=f"{t}-fill"))
        with gr.Row():
            w["strength"] = unchecked(gr.Slider(0, 1, value=0.75, step=0.01, label="Denoising strength",
                                                info="0 (exclusive)–1: how much is redrawn", elem_id=f"{t}-strength"))
            w["scale_by"] = unchecked(gr.Slider(*SCALE_LIMITS, value=1.0, step=0.05, label="Scale by",
                                                info="the image's size times this, when width and height are 0",
                                                elem_id=f"{t}-scale-by"))
        w["resize_mode"] = unchecked(gr.Radio([(label, key) for key, label in RESIZE_MODES.items()],
                                              value="just_resize", label="Resize mode", elem_id=f"{t}-resize-mode",
                                              info="when the size differs from the image's"))
        with gr.Group(visible=False) as w["masking"]:
            with gr.Row():
                w["mask_blur"] = unchecked(gr.Slider(*LIMITS["mask_blur"], value=4, step=1, label="Mask blur",
                                                     info="px, inside the mask's edge", elem_id=f"{t}-mask-blur"))
                w["mask_padding"] = unchecked(gr.Slider(0, 256, value=32, step=4, label="Only masked padding, px",
                                                        elem_id=f"{t}-mask-padding"))
            with gr.Row():
                w["mask_mode"] = unchecked(gr.Radio([(label, key) for key, label in MASK_MODES.items()],
                                                    value="masked", label="Mask mode", elem_id=f"{t}-mask-mode"))
                w["inpaint_area"] = unchecked(gr.Radio([(label, key) for key, label in INPAINT_AREAS.items()],
                                                       value="whole", label="Inpaint area", elem_id=f"{t}-inpaint-area"))
        for mode in MODES:
            w[f"tab_{mode}"].select(lambda m=mode: (m, gr.update(visible=m in MASKED)), None, [w["mode"], w["masking"]],
                                    api_visibility="private", queue=False)
        return cls(w)

    @property
    def inputs(self) -> list:
        """What the UI's Generate reads, after the base fields (in ``build``'s ``generate`` order)."""
        return [self.w[name] for name in ("mode", "image", "sketch", "paint", "upload_image", "upload_mask",
                                          "outpaint_image", *SIDES, "fill", *SETTINGS)]


def settings_of(values: dict) -> dict:
    """Slider and radio values -> request fields (numbers checked and named as typed ones are)."""
    n = forms.number
    return dict(strength=n("strength", values.get("strength"), whole=False),
                resize_mode=values.get("resize_mode") or "just_resize",
                scale_by=n("scale_by", values.get("scale_by"), whole=False, default=1.0),
                mask_blur=n("mask_blur", values.get("mask_blur"), default=4),
                mask_mode=values.get("mask_mode") or "masked", inpaint_area=values.get("inpaint_area") or "whole",
                mask_padding=n("mask_padding", values.get("mask_padding"), default=32))


def request_for(studio: Studio, mode: str, base: dict, values: dict, work: Path) -> GenerationRequest:
    """The request one sub-tab's widgets make (``base``: the base section's request fields). Editor
    pictures are written to ``work`` (the app's own temporary folder); the Studio stores what it runs."""
    settings = settings_of(values)
    own = {k: settings[k] for k in ("strength", "resize_mode", "scale_by")}
    if mode == "img2img":
        return GenerationRequest(task=Task.IMG2IMG, init_image=_need(values.get("image")), **base, **own)
    if mode == "sketch":
        value = values.get("sketch") or {}
        picture = _need(value.get("composite") or value.get("background"))
        return GenerationRequest(task=Task.IMG2IMG, init_image=save_png(flat(picture), work), **base, **own)
    if mode == "inpaint":
        value = values.get("paint") or {}
        background, mask = _need(value.get("background")), strokes(value)
        if mask is None:
            raise InvalidRequest("mask", "paint over the part to redraw first (or upload a mask in Inpaint upload)")
        return GenerationRequest(task=Task.INPAINT, init_image=save_png(flat(background), work),
                                 mask_image=save_png(mask, work), **base, **settings)
    if mode == "inpaint_upload":
        image, mask = _need(values.get("upload_image")), values.get("upload_mask")
        if not mask:
            raise InvalidRequest("mask", "upload a mask too: white = redraw, black = keep")
        return GenerationRequest(task=Task.INPAINT, init_image=image, mask_image=mask, **base, **settings)
    if mode == "outpaint":
        template = GenerationRequest(task=Task.IMG2IMG, init_image=_need(values.get("outpaint_image")), **base,
                                     strength=settings["strength"], scale_by=settings["scale_by"],
                                     mask_blur=settings["mask_blur"])
        sides = {side: forms.number(side, values.get(side), default=0) for side in SIDES}
        return studio.outpaint(template, **sides, fill=values.get("fill") or "edge")
    raise InvalidRequest("mode", f"unknown sub-tab {mode!r}; one of {list(MODES)}")


def _need(picture):
    if picture is None or picture == "":
        raise InvalidRequest("image", NEED_IMAGE)
    return picture


@dataclass
class SendTarget:
    """``ctx.forms[Task.IMG2IMG]`` / ``[Task.INPAINT]``: "send to" fills this tab and picks a sub-tab.
    The size is left empty (the sent image's), scale by 1; the rest as the image was made."""

    form: GenerationForm
    section: Section
    mode: str                          # "img2img" | "inpaint"
    tab_id: str = "img2img"

    @property
    def fill_outputs(self) -> list:
        picture = self.section.image if self.mode == "img2img" else self.section.paint
        return [self.section.tabs, self.section.mode, self.section.masking, picture, *self.form.base.fill_outputs,
                *(self.section.w[name] for name in SETTINGS)]

    def fill(self, fields: dict, image: str | None = None) -> list:
        base = self.form.base.fill({k: v for k, v in fields.items() if k not in ("width", "height")})
        at = self.form.base.FILLED.index("width")
        base[at:at + 2] = [0, 0]                  # the sent image's size
        keep = gr.update()
        settings = [1.0 if name == "scale_by" else keep if fields.get(name) is None else fields[name]
                    for name in SETTINGS]
        picture = keep if image is None else image if self.mode == "img2img" else editor_value(image)
        return [gr.Tabs(selected=self.mode), self.mode, gr.update(visible=self.mode in MASKED), picture, *base,
                *settings]


def build(studio: Studio, ctx) -> GenerationForm:
    work = Path(tempfile.mkdtemp(prefix="studio-img2img-"))       # editor pictures, before the Studio stores them
    made: dict = {}
    with gr.Tab("img2img", id="img2img"):
        form = GenerationForm.create(studio, Task.IMG2IMG, section=lambda t: made.setdefault("s", Section.create(t)))
        section: Section = made["s"]
        with gr.Group(visible=False):          # what API clients send: plain image files
            api_image = gr.File(label="Image", type="filepath")
            api_mask = gr.File(label="Mask (white = redraw)", type="filepath")
            triggers = {name: gr.Button(f"{name} (API)") for name in ("img2img", "inpaint", "outpaint")}

    def run(make, session, progress):
        try:
            req = make()
            yield from form.run(req, session, progress)
        except InvalidRequest as err:
            raise renamed(err) from err

    def base_of(prompt, negative_prompt, model, width, height, steps, guidance, seed, batch_count, batch_size, loras):
        width, height = (None if forms.number(name, value) == 0 else value     # 0: the image's size
                         for name, value in (("width", width), ("height", height)))
        return form.base.request_fields(prompt=prompt, negative_prompt=negative_prompt, model=model, width=width,
                                        height=height, steps=steps, guidance=guidance, seed=seed,
                                        batch_count=batch_count, batch_size=batch_size, loras=loras)

    @shown_as_gr_error
    def generate(prompt, negative_prompt, model, width, height, steps, guidance, seed, batch_count, batch_size, loras,
                 mode, image, sketch, paint, upload_image, upload_mask, outpaint_image, left, right, up, down, fill,
                 strength, resize_mode, scale_by, mask_blur, mask_mode, inpaint_area, mask_padding,
                 request: gr.Request = None, progress=gr.Progress()):
        values = dict(image=image, sketch=sketch, paint=paint, upload_image=upload_image, upload_mask=upload_mask,
                      outpaint_image=outpaint_image, left=left, right=right, up=up, down=down, fill=fill,
                      strength=strength, resize_mode=resize_mode, scale_by=scale_by, mask_blur=mask_blur,
                      mask_mode=mask_mode, inpaint_area=inpaint_area, mask_padding=mask_padding)
        base = base_of(prompt, negative_prompt, model, width, height, steps, guidance, seed, batch_count, batch_size,
                       loras)
        yield from run(lambda: request_for(studio, mode, base, values, work), request, progress)

    form.wire(generate, api_name=None, concurrency=ctx.concurrency, extra_inputs=section.inputs)

    @shown_as_gr_error
    def img2img(prompt: str, image: str, negative_prompt: str = "", model: str = "", width: float = 0,
                height: float = 0, steps: float | None = None, guidance: float | None = None,
                seed: float = -1, batch_count: float = 1, batch_size: float = 1, loras: str = "",
                strength: float = 0.75, resize_mode: str = "just_resize", scale_by: float = 1.0,
                request: gr.Request = None, progress=gr.Progress()):
        """img2img: redraw ``image`` after ``prompt``, ``strength`` of the way (0 exclusive .. 1)."""
        base = base_of(prompt, negative_prompt, model, width, height, steps, guidance, seed, batch_count, batch_size,
                       loras)
        values = dict(image=image, strength=strength, resize_mode=resize_mode, scale_by=scale_by)
        yield from run(lambda: request_for(studio, "img2img", base, values, work), request, progress)

    @shown_as_gr_error
    def inpaint(prompt: str, image: str, mask: str, negative_prompt: str = "", model: str = "",
                width: float = 0, height: float = 0, steps: float | None = None,
                guidance: float | None = None, seed: float = -1, batch_count: float = 1, batch_size: float = 1,
                loras: str = "", strength: float = 0.75, resize_mode: str = "just_resize", scale_by: float = 1.0,
                mask_blur: float = 4, mask_mode: str = "masked", inpaint_area: str = "whole", mask_padding: float = 32,
                request: gr.Request = None, progress=gr.Progress()):
        """Inpaint: redraw the white part of ``mask`` (a plain image file of ``image``'s shape)."""
        base = base_of(prompt, negative_prompt, model, width, height, steps, guidance, seed, batch_count, batch_size,
                       loras)
        values = dict(upload_image=image, upload_mask=mask, strength=strength, resize_mode=resize_mode,
                      scale_by=scale_by, mask_blur=mask_blur, mask_mode=mask_mode, inpaint_area=inpaint_area,
                      mask_padding=mask_padding)
        yield from run(lambda: request_for(studio, "inpaint_upload", base, values, work), request, progress)

    @shown_as_gr_error
    def outpaint(prompt: str, image: str, negative_prompt: str = "", model: str = "", width: float = 0,
                 height: float = 0, steps: float | None = None, guidance: float | None = None,
                 seed: float = -1, batch_count: float = 1, batch_size: float = 1, loras: str = "",
                 left: float = 0, right: float = 0, up: float = 0, down: float = 0, fill: str = "edge",
                 strength: float = 0.75, scale_by: float = 1.0, mask_blur: float = 4,
                 request: gr.Request = None, progress=gr.Progress()):
        """Outpaint: extend ``image`` by the given pixels on each side and inpaint the new area."""
        base = base_of(prompt, negative_prompt, model, width, height, steps, guidance, seed, batch_count, batch_size,
                       loras)
        values = dict(outpaint_image=image, left=left, right=right, up=up, down=down, fill=fill, strength=strength,
                      scale_by=scale_by, mask_blur=mask_blur)
        yield from run(lambda: request_for(studio, "outpaint", base, values, work), request, progress)

    b, s = form.base.fields, section.w
    first = [b["prompt"], api_image]
    rest = [b[name] for name in BASE[1:]]
    for handler, own in ((img2img, ("strength", "resize_mode", "scale_by")), (inpaint, SETTINGS),
                         (outpaint, (*SIDES, "fill", "strength", "scale_by", "mask_blur"))):
        name = handler.__name__
        form.wire_api(handler, triggers[name], api_name=name, concurrency=ctx.concurrency,
                      inputs=[*first, *([api_mask] if name == "inpaint" else []), *rest, *(s[k] for k in own)])

    for mode in ("img2img", "inpaint"):
        ctx.forms[Task(mode)] = SendTarget(form, section, mode)
    store = browse.store_of(studio)
    for source in (ctx.forms.get(Task.TXT2IMG), form):
        if store is not None and isinstance(source, GenerationForm):
            _wire_sends(ctx, store, source, studio)
    return form


def _wire_sends(ctx, store, source: GenerationForm, studio=None) -> None:
    """The results' "Send to img2img / inpaint": the picked image (or the first) and its parameters
    (public mode: only the visitor's own; the ids come from the page)."""
    results = source.results
    for name, button in results.send.items():
        task = Task(name)

        @shown_as_gr_error
        def send(ids, index, request: gr.Request = None, task=task):
            if not ids:
                raise InvalidRequest("images", "generate an image first")
            record = store.get(ids[min(max(int(index or 0), 0), len(ids) - 1)], owner=owner_of(studio, request))
            if record is None or record.missing:
                raise InvalidRequest("images", "that image is no longer in the gallery")
            return ctx.send_to(browse.form_fields(record), task, image=record.path)

        button.visible = True
        button.click(send, [results.image_ids, results.selected], ctx.send_to_outputs(task), api_visibility="private")
