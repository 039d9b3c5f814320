"""What a request adds to its task: LoRAs, ControlNet units and image prompts (IP-Adapter).

Frozen and self-checking like the request that holds them; errors name the request field
(``loras``, ``controls``, ``image_prompts``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from studio.errors import InvalidRequest
from studio.fields import IP_BLOCKS, LIMITS, MAX_SIDE, check_float, check_image, check_int, known_fields


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
        check_image("controls", self.image)
        check_float("controls", self.scale, 0.0, 5.0)
        numbers = all(not isinstance(x, bool) and isinstance(x, (int, float)) for x in (self.start, self.end))
        if not (numbers and 0.0 <= self.start < self.end <= 1.0):
            raise InvalidRequest("controls", f"guidance start/end must satisfy 0 <= start < end <= 1, got "
                                             f"start {self.start} and end {self.end}")
        check_int("controls", self.resolution, 64, MAX_SIDE)
        if not isinstance(self.pixel_perfect, bool):
            raise InvalidRequest("controls", f"pixel_perfect must be true or false, got {self.pixel_perfect!r}")
        for name in ("threshold_a", "threshold_b"):
            if getattr(self, name) is not None:
                check_float("controls", getattr(self, name), -1e6, 1e6)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ControlUnit:
        """Also reads version 1 units: ``control_type`` and ``preprocess: bool``."""
        data = dict(data)
        if "control_type" in data:
            data["type"] = data.pop("control_type")
            data["preprocessor"] = data["type"] if data.pop("preprocess", True) else "none"
        return cls(**known_fields(cls, data, "controls"))


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
            check_image("image_prompts", image)
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
        return cls(**known_fields(cls, data, "image_prompts"))


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


def check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(name, f"must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise InvalidRequest(name, f"must be within {lo}..{hi}, got {value}")
