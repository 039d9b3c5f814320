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

MAX_SEED = 2**32 - 1
MAX_SIDE = 4096
MIN_SIDE = 16
# The one source of every numeric bound: requests check them, the UI shows them (never clamps).
LIMITS: dict[str, tuple[int, int]] = {
    "width": (MIN_SIDE, MAX_SIDE), "height": (MIN_SIDE, MAX_SIDE), "steps": (1, 200), "guidance": (0, 50),
    "seed": (0, MAX_SEED), "batch_size": (1, 16), "batch_count": (1, 100),
}


class Task(str, Enum):
    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    INPAINT = "inpaint"
    CONTROLNET = "controlnet"


@dataclass(frozen=True, slots=True)
class LoraSpec:
    name: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidRequest("loras", "a LoRA needs a name")
        if not math.isfinite(self.weight) or abs(self.weight) > 10:
            raise InvalidRequest("loras", f"weight of {self.name!r} must be within -10..10, got {self.weight}")


@dataclass(frozen=True, slots=True)
class ControlUnit:
    control_type: str                 # canny | depth | pose | ...
    image: str                        # path of the control image (already preprocessed or not)
    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0
    preprocess: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.start < self.end <= 1.0:
            raise InvalidRequest("controlnet", f"start/end must satisfy 0 <= start < end <= 1, got {self.start}..{self.end}")
        if not 0.0 <= self.scale <= 5.0:
            raise InvalidRequest("controlnet", f"scale must be within 0..5, got {self.scale}")


@dataclass(frozen=True, slots=True)
class ImagePrompt:
    image: str                        # path of the reference image
    scale: float = 0.6

    def __post_init__(self) -> None:
        if not 0.0 <= self.scale <= 2.0:
            raise InvalidRequest("ip_adapter", f"scale must be within 0..2, got {self.scale}")


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
    width: int | None = None          # None = the model's default
    height: int | None = None
    steps: int | None = None
    guidance: float | None = None
    seed: int | None = None           # None or -1: the studio draws one; results report it
    batch_size: int = 1               # images per pipeline call
    batch_count: int = 1              # pipeline calls, one after the other
    scheduler: str | None = None      # None = the model's own
    strength: float | None = None     # img2img / inpaint
    init_image: str | None = None
    mask_image: str | None = None
    loras: tuple[LoraSpec, ...] = ()
    controls: tuple[ControlUnit, ...] = ()
    image_prompt: ImagePrompt | None = None
    extra: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

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
            lo, hi = LIMITS["guidance"]
            if isinstance(self.guidance, bool) or not isinstance(self.guidance, (int, float)) \
                    or not math.isfinite(self.guidance) or not lo <= self.guidance <= hi:
                raise InvalidRequest("guidance", f"must be a number within {lo:g}..{hi:g}, got {self.guidance!r}")
        if self.seed is not None:
            _check_int("seed", self.seed, *LIMITS["seed"])
        _check_int("batch_size", self.batch_size, *LIMITS["batch_size"])
        _check_int("batch_count", self.batch_count, *LIMITS["batch_count"])
        if self.strength is not None and not 0.0 < self.strength <= 1.0:
            raise InvalidRequest("strength", f"must be within 0 (exclusive)..1, got {self.strength}")
        if self.task in (Task.IMG2IMG, Task.INPAINT) and not self.init_image:
            raise InvalidRequest("init_image", f"{self.task.value} needs an input image")
        if self.task is Task.INPAINT and not self.mask_image:
            raise InvalidRequest("mask_image", "inpaint needs a mask")
        if self.task is Task.CONTROLNET and not self.controls:
            raise InvalidRequest("controls", "ControlNet needs at least one control unit")
        object.__setattr__(self, "loras", tuple(self.loras))
        object.__setattr__(self, "controls", tuple(self.controls))
        names = [lora.name for lora in self.loras]
        if len(set(names)) != len(names):
            raise InvalidRequest("loras", f"each LoRA may appear once, got {names}")

    # -- derived ---------------------------------------------------------------------------
    @property
    def images_total(self) -> int:
        return self.batch_size * self.batch_count

    def replace(self, **changes: Any) -> GenerationRequest:
        return dataclasses.replace(self, **changes)

    def resolved(self, *, model_id: str, width: int, height: int, steps: int, guidance: float,
                 seed: int, scheduler: str) -> GenerationRequest:
        """Fill every default so the request alone reproduces the images."""
        return self.replace(
            model_id=self.model_id or model_id,
            width=self.width or width,
            height=self.height or height,
            steps=self.steps or steps,
            guidance=guidance if self.guidance is None else self.guidance,
            seed=seed if self.seed is None else self.seed,
            scheduler=self.scheduler or scheduler,
        )

    def seed_of(self, batch: int, index: int) -> int:
        """A1111 habit: image i of batch b gets seed + b*batch_size + i, each with its own
        generator, so any single image can be re-made at batch size 1."""
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
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidRequest(sorted(unknown)[0], f"unknown request field(s) {sorted(unknown)}")
        data = dict(data)
        data["loras"] = tuple(LoraSpec(**x) for x in data.get("loras") or ())
        data["controls"] = tuple(ControlUnit(**x) for x in data.get("controls") or ())
        if data.get("image_prompt"):
            data["image_prompt"] = ImagePrompt(**data["image_prompt"])
        data["extra"] = tuple(sorted((data.get("extra") or {}).items()))
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> GenerationRequest:
        return cls.from_dict(json.loads(text))


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
