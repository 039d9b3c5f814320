"""What the UI (or the Python API) asks for, and what it gets back.

Requests are frozen and check themselves on creation: a bad value raises
``InvalidRequest`` naming the field. Fields left ``None`` mean "the model's default"; the
studio resolves them (``GenerationRequest.resolved``) before running, and only resolved
requests are written next to images, so an image can always be made again.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from studio.errors import InvalidRequest

# Seeds are 64-bit, as torch.Generator.manual_seed takes them (0..2^64-1): Fooocus writes seeds up to
# 2^63-1, ComfyUI up to 2^64-1, A1111 and InvokeAI up to 2^32-1. Seeds the studio draws itself stay
# within RANDOM_SEED_MAX (A1111's habit: short enough to type).
MAX_SEED = 2**64 - 1
RANDOM_SEED_MAX = 2**32 - 1
MAX_SIDE = 4096
MIN_SIDE = 16
# The one source of every numeric bound: requests check them, the UI shows them (never clamps).
LIMITS: dict[str, tuple[int, int]] = {
    "width": (MIN_SIDE, MAX_SIDE), "height": (MIN_SIDE, MAX_SIDE), "steps": (1, 200), "guidance": (0, 50),
    "seed": (0, MAX_SEED), "batch_size": (1, 16), "batch_count": (1, 100), "mask_blur": (0, 64),
    "mask_padding": (0, 1024), "outpaint": (0, MAX_SIDE),
    "lora_weight": (-2, 2),          # the LoRA mixer's range, and what every request takes
    "ip_scale": (0, 2),              # an IP-Adapter's scale
    "true_cfg_scale": (1, 20),       # FLUX: true CFG with the negative prompt (XLabs' IP-Adapter recipe)
}
# IP-Adapter layers a scale goes to (SD/SDXL): every one, or InstantStyle's style / layout blocks
IP_BLOCKS = {"all": "All layers", "style": "Style only", "layout": "Layout only", "style_layout": "Style and layout"}


# img2img / inpaint choices, A1111's names in the UI and infotext (the API takes these values)
RESIZE_MODES = {"just_resize": "Just resize", "crop_and_resize": "Crop and resize", "resize_and_fill": "Resize and fill"}
MASK_MODES = {"masked": "Inpaint masked", "not_masked": "Inpaint not masked"}
INPAINT_AREAS = {"whole": "Whole picture", "only_masked": "Only masked"}
SCALE_LIMITS = (0.05, 4.0)       # scale_by: the init image's size times this, when no width/height is given

REQUEST_VERSION = 2          # 1: task "controlnet", one image_prompt, ControlUnit(control_type, preprocess)
MAX_REFERENCES = 10          # per request; a family may take fewer (catalog)
MAX_IMAGE_PROMPTS = 4        # adapters at once
MAX_CONTROLS = 3             # ControlNet units at once (A1111's default)
PRIOR_TASKS = {"controlnet": "txt2img"}


class Task(str, Enum):
    """What the pipeline starts from. Controls, image prompts, references and LoRAs are
    modifiers that combine with any task the family has a pipeline for (``catalog``)."""

    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    INPAINT = "inpaint"     # outpaint = inpaint on a padded canvas


def _check_float(name: str, value: Any, lo: float, hi: float, *, low_open: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value > hi or value < lo or (low_open and value == lo):
        low = f"{lo:g} (exclusive)" if low_open else f"{lo:g}"
        raise InvalidRequest(name, f"must be a number within {low}..{hi:g}, got {value!r}")


def _check_image(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(name, f"needs an image (a file path), got {value!r}")


@dataclass(frozen=True, slots=True)
class LoraSpec:
    """One LoRA of a mix. ``hash``: A1111's LoRA hash (sha256 of the file's tensor bytes, hex),
    filled when the request is resolved (or read from foreign metadata, 12 digits), so a
    re-generate finds the same file after a rename. The weight's range is the request's
    (``LIMITS["lora_weight"]``): a spec read from an old row or a foreign image may lie outside."""

    name: str
    weight: float = 1.0
    hash: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidRequest("loras", "a LoRA needs a name")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) \
                or not math.isfinite(self.weight):
            raise InvalidRequest("loras", f"weight of {self.name!r} must be a finite number, got {self.weight!r}")
        if not isinstance(self.hash, str) or (self.hash and not all(c in "0123456789abcdef" for c in self.hash)):
            raise InvalidRequest("loras", f"hash of {self.name!r} must be hex digits, got {self.hash!r}")


@dataclass(frozen=True, slots=True)
class ControlUnit:
    """One ControlNet input. ``image`` is what the user gave; ``preprocessor`` turns it into the
    map the net reads ("none": it is a map already). The resolved request also carries ``map``,
    the stored map that was used, so a re-generate skips the preprocessor."""

    type: str                          # what the map shows: canny | depth | pose | ...
    image: str
    model: str = ""                    # a ControlNet in models/controlnet/; "" = the family's net for the type
    mode: str = ""                     # union nets: the control mode; "" = the type
    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0
    preprocessor: str = "none"
    resolution: int = 512              # the preprocessor's working size (A1111 "Processor Res")
    map: str = ""                      # filled when resolved: the stored control map
    pixel_perfect: bool = False        # resolution from the output size (set when resolved)
    threshold_a: float | None = None   # the preprocessor's settings (canny: low, high); None = its default
    threshold_b: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type:
            raise InvalidRequest("controls", f"a control unit needs a type (canny, depth, pose...), got {self.type!r}")
        _check_image("controls", self.image)
        _check_float("controls", self.scale, 0.0, 5.0)
        numbers = all(not isinstance(x, bool) and isinstance(x, (int, float)) for x in (self.start, self.end))
        if not (numbers and 0.0 <= self.start < self.end <= 1.0):
            raise InvalidRequest("controls", f"guidance start/end must satisfy 0 <= start < end <= 1, got "
                                             f"start {self.start} and end {self.end}")
        _check_int("controls", self.resolution, 64, MAX_SIDE)
        if not isinstance(self.pixel_perfect, bool):
            raise InvalidRequest("controls", f"pixel_perfect must be true or false, got {self.pixel_perfect!r}")
        for name in ("threshold_a", "threshold_b"):
            if getattr(self, name) is not None:
                _check_float("controls", getattr(self, name), -1e6, 1e6)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ControlUnit:
        """Also reads version 1 units: ``control_type`` and ``preprocess: bool``."""
        data = dict(data)
        if "control_type" in data:
            data["type"] = data.pop("control_type")
            data["preprocessor"] = data["type"] if data.pop("preprocess", True) else "none"
        return cls(**_known(cls, data, "controls"))


@dataclass(frozen=True, slots=True)
class ImagePrompt:
    """IP-Adapter: one adapter and its reference image(s)."""

    images: tuple[str, ...]
    adapter: str = ""                  # an IP-Adapter in models/ip_adapter/ or the catalog; "" = the model's default
    scale: float = 0.6
    blocks: str = "all"                # SD/SDXL: where the scale goes (IP_BLOCKS)

    def __post_init__(self) -> None:
        images = (self.images,) if isinstance(self.images, str) else tuple(self.images or ())
        object.__setattr__(self, "images", images)
        if not images:
            raise InvalidRequest("image_prompts", "an image prompt needs at least one image")
        for image in images:
            _check_image("image_prompts", image)
        lo, hi = LIMITS["ip_scale"]
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not lo <= self.scale <= hi:
            raise InvalidRequest("image_prompts", f"an IP-Adapter's scale must be within {lo}..{hi}, got {self.scale!r}")
        if self.blocks not in IP_BLOCKS:
            raise InvalidRequest("image_prompts", f"blocks must be one of {list(IP_BLOCKS)}, got {self.blocks!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImagePrompt:
        data = dict(data)
        if "image" in data:                                   # version 1
            data["images"] = (data.pop("image"),)
        return cls(**_known(cls, data, "image_prompts"))


def check_unique_loras(loras: tuple[LoraSpec, ...]) -> None:
    """Each LoRA once (a request, and a gallery row imported from foreign metadata, both check)."""
    names = [lora.name for lora in loras]
    if len(set(names)) != len(names):
        raise InvalidRequest("loras", f"each LoRA may appear once, got {names}")


def merge_prompt_loras(prompt: str, loras: tuple[LoraSpec, ...]) -> tuple[str, tuple[LoraSpec, ...]]:
    """``<lora:name:w>`` tags out of the prompt, into the LoRAs (A1111's syntax, ``studio.loras.tags``).
    A tag and a listed LoRA of the same name must agree on the weight."""
    from studio.loras.tags import take

    clean, tagged = take(prompt)
    if not tagged:
        return prompt, loras
    listed = {lora.name: lora for lora in loras}
    out = list(loras)
    for name, weight in tagged:
        if name not in listed:
            out.append(LoraSpec(name, weight))
        elif listed[name].weight != weight:
            raise InvalidRequest("loras", f"<lora:{name}:{weight:g}> in the prompt and {name}:{listed[name].weight:g} "
                                          "in the LoRAs disagree; change one of them")
    return clean, tuple(out)


def check_lora_weights(loras: tuple[LoraSpec, ...]) -> None:
    lo, hi = LIMITS["lora_weight"]
    for lora in loras:
        if not lo <= lora.weight <= hi:
            raise InvalidRequest("loras", f"weight of {lora.name!r} must be within {lo}..{hi}, got {lora.weight:g}")


def _known(cls, data: dict[str, Any], name: str) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise InvalidRequest(name, f"unknown field(s) {unknown}")
    return data


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(name, f"must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise InvalidRequest(name, f"must be within {lo}..{hi}, got {value}")


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    prompt: str
    model_id: str = ""                # "" = the studio's default model
    task: Task = Task.TXT2IMG
    negative_prompt: str = ""
    width: int | None = None          # None = the model's default (img2img/inpaint: the input's size)
    height: int | None = None
    steps: int | None = None
    guidance: float | None = None
    seed: int | None = None           # None or -1: the studio draws one; results report it
    batch_size: int = 1               # images per pipeline call
    batch_count: int = 1              # pipeline calls, one after the other
    scheduler: str | None = None      # None = the model's own
    strength: float | None = None     # img2img / inpaint: how much is redrawn (None = 0.75 / 1.0)
    init_image: str | None = None     # img2img / inpaint
    mask_image: str | None = None     # inpaint: white = redraw
    mask_blur: int = 4                # inpaint: pixels of blur where the redrawn part meets the original
    resize_mode: str = "just_resize"  # img2img / inpaint: how the init image takes the request's size (RESIZE_MODES)
    scale_by: float = 1.0             # img2img / inpaint without width/height: the init image's size times this
    mask_mode: str = "masked"         # inpaint: redraw the white part (masked) or all but it (not_masked)
    inpaint_area: str = "whole"       # inpaint: whole picture, or only_masked (crop around the mask, work at size)
    mask_padding: int = 32            # inpaint, only_masked: pixels around the mask taken into the crop
    loras: tuple[LoraSpec, ...] = ()
    controls: tuple[ControlUnit, ...] = ()
    image_prompts: tuple[ImagePrompt, ...] = ()
    references: tuple[str, ...] = ()  # FLUX.2 (and Kontext): images the prompt refers to
    true_cfg_scale: float | None = None   # FLUX: true CFG with the negative prompt ("" too); None: the family's way
    extra: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    version: int = REQUEST_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise InvalidRequest("prompt", f"must be text, got {type(self.prompt).__name__}")
        if not isinstance(self.task, Task):
            try:
                object.__setattr__(self, "task", Task(self.task))
            except ValueError:
                raise InvalidRequest("task", f"unknown task {self.task!r}; one of {[t.value for t in Task]}") from None
        if self.seed == -1:
            object.__setattr__(self, "seed", None)
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is None:
                continue
            _check_int(name, value, *LIMITS[name])
            if value % 16:
                lower, upper = value // 16 * 16, value // 16 * 16 + 16
                raise InvalidRequest(name, f"must be a multiple of 16, got {value} (try {lower or 16} or {upper})")
        if self.steps is not None:
            _check_int("steps", self.steps, *LIMITS["steps"])
        if self.guidance is not None:
            _check_float("guidance", self.guidance, *LIMITS["guidance"])
        if self.seed is not None:
            _check_int("seed", self.seed, *LIMITS["seed"])
        if self.true_cfg_scale is not None:
            _check_float("true_cfg_scale", self.true_cfg_scale, *LIMITS["true_cfg_scale"])
        _check_int("batch_size", self.batch_size, *LIMITS["batch_size"])
        _check_int("batch_count", self.batch_count, *LIMITS["batch_count"])
        _check_int("mask_blur", self.mask_blur, *LIMITS["mask_blur"])
        for name, choices in (("resize_mode", RESIZE_MODES), ("mask_mode", MASK_MODES),
                              ("inpaint_area", INPAINT_AREAS)):
            if getattr(self, name) not in choices:
                raise InvalidRequest(name, f"must be one of {list(choices)}, got {getattr(self, name)!r}")
        _check_float("scale_by", self.scale_by, *SCALE_LIMITS)
        _check_int("mask_padding", self.mask_padding, *LIMITS["mask_padding"])
        self._check_inputs()
        for name, kind in (("loras", LoraSpec), ("controls", ControlUnit), ("image_prompts", ImagePrompt)):
            value = tuple(getattr(self, name) or ())
            if any(not isinstance(x, kind) for x in value):
                raise InvalidRequest(name, f"expected {kind.__name__} items, got {value!r}")
            object.__setattr__(self, name, value)
        prompt, loras = merge_prompt_loras(self.prompt, self.loras)
        object.__setattr__(self, "prompt", prompt)
        object.__setattr__(self, "loras", loras)
        check_lora_weights(self.loras)
        object.__setattr__(self, "references", tuple(self.references or ()))
        for image in self.references:
            _check_image("references", image)
        if len(self.references) > MAX_REFERENCES:
            raise InvalidRequest("references", f"at most {MAX_REFERENCES} reference images, got {len(self.references)}")
        if len(self.controls) > MAX_CONTROLS:
            raise InvalidRequest("controls", f"at most {MAX_CONTROLS} ControlNet units at once, got {len(self.controls)}")
        if len(self.image_prompts) > MAX_IMAGE_PROMPTS:
            raise InvalidRequest("image_prompts", f"at most {MAX_IMAGE_PROMPTS} IP-Adapters at once, "
                                                  f"got {len(self.image_prompts)}")
        check_unique_loras(self.loras)

    def _check_inputs(self) -> None:
        if self.task is Task.TXT2IMG:
            for name in ("init_image", "mask_image", "strength"):
                if getattr(self, name) is not None:
                    raise InvalidRequest(name, f"txt2img takes no {name}; use img2img or inpaint")
            return
        _check_image("init_image", self.init_image)
        if self.task is Task.INPAINT:
            _check_image("mask_image", self.mask_image)
        elif self.mask_image is not None:
            raise InvalidRequest("mask_image", "img2img takes no mask; use inpaint")
        if self.strength is not None:
            _check_float("strength", self.strength, 0.0, 1.0, low_open=True)

    # -- derived ---------------------------------------------------------------------------
    @property
    def images_total(self) -> int:
        return self.batch_size * self.batch_count

    @property
    def input_images(self) -> dict[str, str]:
        """Every input image by where it sits (``init_image``, ``controls.0.image``, ...)."""
        out = {}
        for name in ("init_image", "mask_image"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        for i, unit in enumerate(self.controls):
            out[f"controls.{i}.image"] = unit.image
            if unit.map:
                out[f"controls.{i}.map"] = unit.map
        for i, prompt in enumerate(self.image_prompts):
            for j, image in enumerate(prompt.images):
                out[f"image_prompts.{i}.images.{j}"] = image
        for i, image in enumerate(self.references):
            out[f"references.{i}"] = image
        return out

    def with_images(self, mapping: dict[str, str]) -> GenerationRequest:
        """The request with input images replaced (by path: old -> new), e.g. by stored copies."""
        def swap(path: str) -> str:
            return mapping.get(path, path) if path else path

        return self.replace(
            init_image=swap(self.init_image) if self.init_image else self.init_image,
            mask_image=swap(self.mask_image) if self.mask_image else self.mask_image,
            controls=tuple(dataclasses.replace(u, image=swap(u.image), map=swap(u.map)) for u in self.controls),
            image_prompts=tuple(dataclasses.replace(p, images=tuple(swap(x) for x in p.images))
                                for p in self.image_prompts),
            references=tuple(swap(x) for x in self.references))

    def replace(self, **changes: Any) -> GenerationRequest:
        return dataclasses.replace(self, **changes)

    def resolved(self, *, model_id: str, width: int, height: int, steps: int, guidance: float,
                 seed: int, scheduler: str, strength: float | None = None) -> GenerationRequest:
        """Fill every default so the request alone reproduces the images."""
        return self.replace(
            model_id=self.model_id or model_id,
            width=self.width or width,
            height=self.height or height,
            steps=self.steps or steps,
            guidance=guidance if self.guidance is None else self.guidance,
            seed=seed if self.seed is None else self.seed,
            scheduler=self.scheduler or scheduler,
            strength=self.strength if self.strength is not None or self.task is Task.TXT2IMG else strength,
        )

    def seed_of(self, batch: int, index: int) -> int:
        """A1111 habit: image i of batch b gets seed + b*batch_size + i, each with its own
        generator, so any single image can be re-made at batch size 1. Wraps at 2^64
        (2^64-1 is followed by 0)."""
        assert self.seed is not None, "resolve the request first"
        return (self.seed + batch * self.batch_size + index) % (MAX_SEED + 1)

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["task"] = self.task.value
        data["extra"] = dict(self.extra)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationRequest:
        """A request from its JSON form, any version (older ones are migrated)."""
        data = migrate(dict(data))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidRequest(sorted(unknown)[0], f"unknown request field(s) {sorted(unknown)}")
        data["loras"] = tuple(x if isinstance(x, LoraSpec) else LoraSpec(**x) for x in data.get("loras") or ())
        data["controls"] = tuple(x if isinstance(x, ControlUnit) else ControlUnit.from_dict(x)
                                 for x in data.get("controls") or ())
        data["image_prompts"] = tuple(x if isinstance(x, ImagePrompt) else ImagePrompt.from_dict(x)
                                      for x in data.get("image_prompts") or ())
        data["references"] = tuple(data.get("references") or ())
        data["extra"] = tuple(sorted((data.get("extra") or {}).items()))
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> GenerationRequest:
        return cls.from_dict(json.loads(text))


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A request dict of any version -> the current version's field names.

    Version 1 (no ``version`` key): task "controlnet" (now txt2img + controls), one
    ``image_prompt`` {image, scale} (now ``image_prompts``), units with ``control_type``/``preprocess``.
    """
    version = data.get("version", 1)
    if not isinstance(version, int) or version > REQUEST_VERSION:
        raise InvalidRequest("version", f"this studio reads request versions 1..{REQUEST_VERSION}, got {version!r}")
    if version == 1:
        data["task"] = PRIOR_TASKS.get(data.get("task"), data.get("task", "txt2img"))
        prompt = data.pop("image_prompt", None)
        data["image_prompts"] = [prompt] if prompt else []
        data["controls"] = [ControlUnit.from_dict(c) if isinstance(c, dict) else c for c in data.get("controls") or ()]
        data["version"] = REQUEST_VERSION
    return data


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    step: int                 # steps done in the current call (1-based)
    total: int                # steps of the current call
    batch: int = 0            # which call (0-based) of batch_count
    batches: int = 1
    elapsed: float = 0.0      # seconds since the request started
    eta: float | None = None  # seconds left for the whole request, when known

    @property
    def fraction(self) -> float:
        return (self.batch * self.total + self.step) / max(1, self.batches * self.total)


@dataclass(frozen=True, slots=True)
class SavedImage:
    path: str
    seed: int
    image_id: int | None = None   # gallery row, when a gallery records it
    infotext: str = ""


@dataclass(frozen=True, slots=True)
class GenerationResult:
    request: GenerationRequest            # resolved: every default filled in
    images: tuple[Any, ...]               # PIL images, native size
    seeds: tuple[int, ...]
    saved: tuple[SavedImage, ...] = ()
    timings: tuple[tuple[str, float], ...] = ()
    cancelled: bool = False
    message: str = ""
    notices: tuple[str, ...] = ()         # things the user should know that are not errors

    def timing(self, name: str) -> float:
        return dict(self.timings).get(name, 0.0)
