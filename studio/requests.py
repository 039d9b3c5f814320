"""What the UI (or the Python API) asks for: one request shape for every tab, a task plus modifiers
(``studio.modifiers``), checked against ``studio.fields``; what it gets back is in ``studio.results``.

Requests are frozen and check themselves on creation: a bad value raises
``InvalidRequest`` naming the field. Fields left ``None`` mean "the model's default"; the
studio resolves them (``GenerationRequest.resolved``) before running, and only resolved
requests are written next to images, so an image can always be made again.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from studio.errors import InvalidRequest
# the bounds and modifiers are part of the request's shape: importable from here as well
from studio.fields import (  # noqa: F401
    INPAINT_AREAS, IP_BLOCKS, LIMITS, MASK_MODES, MAX_SEED, MAX_SIDE, MIN_SIDE, RANDOM_SEED_MAX, RESIZE_MODES,
    SCALE_LIMITS, check_float, check_image, check_int,
)
from studio.modifiers import (  # noqa: F401
    ControlUnit, ImagePrompt, LoraSpec, check_lora_weights, check_unique_loras, merge_prompt_loras,
)

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
            check_int(name, value, *LIMITS[name])
            if value % 16:
                lower, upper = value // 16 * 16, value // 16 * 16 + 16
                raise InvalidRequest(name, f"must be a multiple of 16, got {value} (try {lower or 16} or {upper})")
        if self.steps is not None:
            check_int("steps", self.steps, *LIMITS["steps"])
        if self.guidance is not None:
            check_float("guidance", self.guidance, *LIMITS["guidance"])
        if self.seed is not None:
            check_int("seed", self.seed, *LIMITS["seed"])
        if self.true_cfg_scale is not None:
            check_float("true_cfg_scale", self.true_cfg_scale, *LIMITS["true_cfg_scale"])
        check_int("batch_size", self.batch_size, *LIMITS["batch_size"])
        check_int("batch_count", self.batch_count, *LIMITS["batch_count"])
        check_int("mask_blur", self.mask_blur, *LIMITS["mask_blur"])
        for name, choices in (("resize_mode", RESIZE_MODES), ("mask_mode", MASK_MODES),
                              ("inpaint_area", INPAINT_AREAS)):
            if getattr(self, name) not in choices:
                raise InvalidRequest(name, f"must be one of {list(choices)}, got {getattr(self, name)!r}")
        check_float("scale_by", self.scale_by, *SCALE_LIMITS)
        check_int("mask_padding", self.mask_padding, *LIMITS["mask_padding"])
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
            check_image("references", image)
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
        check_image("init_image", self.init_image)
        if self.task is Task.INPAINT:
            check_image("mask_image", self.mask_image)
        elif self.mask_image is not None:
            raise InvalidRequest("mask_image", "img2img takes no mask; use inpaint")
        if self.strength is not None:
            check_float("strength", self.strength, 0.0, 1.0, low_open=True)

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
