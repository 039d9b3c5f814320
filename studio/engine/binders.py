"""Request (and its loaded images) -> the keyword arguments of one diffusers ``__call__``.

Pure functions, no torch: one binder per task (size, image, mask, strength) and one per modifier
(controls, image prompts, references), each reading the catalog's ``PipeSpec`` flags for what the
class takes. ``tests/test_binders.py`` checks every keyword they can produce against the real
``inspect.signature`` of every class in the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.errors import InvalidRequest
from studio.models.catalog import Family, PipeSpec
from studio.requests import GenerationRequest, Task


@dataclass(frozen=True)
class Inputs:
    """The request's images, opened and sized for the call (``studio.engine.inputs`` makes them)."""

    init: Any = None                                  # PIL image, request size
    mask: Any = None                                  # PIL "L", request size; white = redraw
    control_maps: tuple[Any, ...] = ()                # one per control unit, request size
    union: tuple[bool, ...] = ()                      # per unit: is its net a union net (takes a mode)?
    modes: tuple[int, ...] = ()                       # per unit: its net's number for the unit's mode
    notices: tuple[str, ...] = ()                     # what the user should know (a map stretched to fit)
    image_prompts: tuple[tuple[Any, ...], ...] = ()   # per adapter: its reference images
    references: tuple[Any, ...] = ()


def base(family: Family, spec: PipeSpec, req: GenerationRequest, *, max_sequence_length: int | None) -> dict:
    kw: dict = {"prompt": req.prompt, "num_inference_steps": req.steps, "guidance_scale": req.guidance,
                "num_images_per_prompt": req.batch_size, "output_type": "pil"}
    if spec.sequence_length and max_sequence_length is not None:
        kw["max_sequence_length"] = max_sequence_length
    if req.true_cfg_scale is not None and spec.true_cfg:   # asked for: an empty negative is "unconditional"
        kw["negative_prompt"] = req.negative_prompt
        kw["true_cfg_scale"] = req.true_cfg_scale
    elif req.negative_prompt:                    # Studio.resolve refused it where the pipeline has none
        kw["negative_prompt"] = req.negative_prompt
        if family.negative == "true_cfg" and spec.true_cfg:
            kw["true_cfg_scale"] = family.true_cfg_scale
    return kw


def size(spec: PipeSpec, req: GenerationRequest) -> dict:
    return {"height": req.height, "width": req.width} if spec.size else {}


def bind_txt2img(spec: PipeSpec, req: GenerationRequest, inputs: Inputs) -> dict:
    return size(spec, req)


def bind_img2img(spec: PipeSpec, req: GenerationRequest, inputs: Inputs) -> dict:
    """SD/SDXL img2img take no size: the output has the input's, so the input comes sized."""
    return {**size(spec, req), "image": inputs.init, "strength": req.strength}


def bind_inpaint(spec: PipeSpec, req: GenerationRequest, inputs: Inputs) -> dict:
    return {**size(spec, req), "image": inputs.init, "mask_image": inputs.mask, "strength": req.strength}


TASK_BINDERS = {Task.TXT2IMG: bind_txt2img, Task.IMG2IMG: bind_img2img, Task.INPAINT: bind_inpaint}


def _one_or_list(items: list) -> Any:
    return items[0] if len(items) == 1 else items


def bind_controls(family: Family, spec: PipeSpec, req: GenerationRequest, inputs: Inputs) -> dict:
    """Maps, scales and guidance windows, one per unit (a list when several nets run at once).
    Union nets also take the mode number of each unit's control type (the catalog numbers them)."""
    if not req.controls:
        return {}
    units = req.controls
    kw: dict = {spec.control_arg: _one_or_list(list(inputs.control_maps)),
                "controlnet_conditioning_scale": _one_or_list([u.scale for u in units]),
                "control_guidance_start": _one_or_list([u.start for u in units]),
                "control_guidance_end": _one_or_list([u.end for u in units])}
    if any(inputs.union):
        if inputs.modes:                       # the numbers of each unit's own net (studio.resolve checked them)
            modes = list(inputs.modes)
        else:                                  # the family's numbering
            check_modes(family, req, inputs.union)
            modes = [family.control_modes.get(u.mode or u.type, -1) for u in units]
        kw["control_mode"] = _one_or_list(modes)
    return kw


def check_modes(family: Family, req: GenerationRequest, union: tuple[bool, ...]) -> None:
    """Each unit of a union net needs a mode the family's union nets have (its type by default)."""
    for unit, is_union in zip(req.controls, union, strict=False):
        name = unit.mode or unit.type
        if is_union and name not in family.control_modes:
            raise InvalidRequest("controls", f"union ControlNets of {family.label} have no {name!r} mode; "
                                             f"modes: {', '.join(family.control_modes)}")


def bind_image_prompts(family: Family, spec: PipeSpec, req: GenerationRequest, inputs: Inputs) -> dict:
    """One entry per adapter: its image, or the list of its images. Scales are set on the pipeline
    by the lease (``set_ip_adapter_scale``), not passed here."""
    if not req.image_prompts:
        return {}
    return {"ip_adapter_image": [_one_or_list(list(images)) for images in inputs.image_prompts]}


def bind_references(family: Family, spec: PipeSpec, req: GenerationRequest, inputs: Inputs) -> dict:
    return {"image": _one_or_list(list(inputs.references))} if req.references else {}


MODIFIER_BINDERS = (bind_controls, bind_image_prompts, bind_references)


def bind(family: Family, spec: PipeSpec, req: GenerationRequest, inputs: Inputs, *,
         max_sequence_length: int | None) -> dict:
    """Every keyword argument of the call but ``generator`` and ``callback_on_step_end``."""
    kw = base(family, spec, req, max_sequence_length=max_sequence_length)
    kw.update(TASK_BINDERS[req.task](spec, req, inputs))
    for binder in MODIFIER_BINDERS:
        for key, value in binder(family, spec, req, inputs).items():
            if key in kw:
                raise InvalidRequest("task", f"{spec.cls}: {key} is wanted twice ({req.task.value} and a modifier)")
            kw[key] = value
    return kw


def check(family: Family, req: GenerationRequest, *, union: bool = False) -> PipeSpec:
    """What the family can serve, before anything loads: ``InvalidRequest`` names the field.
    ``union``: the request's nets are the family's union class (SDXL's union pipelines)."""
    spec = family.pipe(req.task, controlled=bool(req.controls), union=union)
    if req.true_cfg_scale is not None and not spec.true_cfg:
        raise InvalidRequest("true_cfg_scale", f"{family.label} has no true CFG with {spec.cls}; leave it empty")
    true_cfg = req.true_cfg_scale is not None           # FLUX: any FLUX.1 takes a negative prompt through it
    if req.negative_prompt and not true_cfg and (not family.supports_negative or not spec.negative):
        where = "" if not family.supports_negative else f" with {spec.cls}"
        raise InvalidRequest("negative_prompt", f"{family.label} takes no negative prompt{where}; leave it empty")
    if req.controls and not family.controlnet_class:
        raise InvalidRequest("controls", f"{family.label} has no ControlNets")
    if req.image_prompts and not spec.ip_adapter:
        raise InvalidRequest("image_prompts", f"{family.label} takes no IP-Adapter image prompts"
                                              + (f" with {spec.cls}" if family.ip_adapter else ""))
    if req.references:
        if not spec.references:
            raise InvalidRequest("references", f"{family.label} takes no reference images")
        if len(req.references) > family.max_references:
            raise InvalidRequest("references", f"{family.label} takes at most {family.max_references} reference "
                                               f"images, got {len(req.references)}")
    return spec
