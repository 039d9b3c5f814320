"""The bounds every request field is checked against, and the checks.

One source: requests and their modifiers check values with these, the UI shows the same bounds
(never clamps), and each failed check raises ``InvalidRequest`` naming the field.
"""

from __future__ import annotations

import dataclasses
import math
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


def check_float(name: str, value: Any, lo: float, hi: float, *, low_open: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value > hi or value < lo or (low_open and value == lo):
        low = f"{lo:g} (exclusive)" if low_open else f"{lo:g}"
        raise InvalidRequest(name, f"must be a number within {low}..{hi:g}, got {value!r}")


def check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(name, f"must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise InvalidRequest(name, f"must be within {lo}..{hi}, got {value}")


def check_image(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(name, f"needs an image (a file path), got {value!r}")


def known_fields(cls, data: dict[str, Any], name: str) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise InvalidRequest(name, f"unknown field(s) {unknown}")
    return data
