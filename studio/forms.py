"""Form values -> request fields, and foreign values -> form values. Plain Python, no Gradio.

The UI's number boxes hand over whatever came in (a browser's number, or over the raw HTTP API
a string, NaN or 1e30): ``number`` names the field and says what is wrong, never clamps.
``adapt`` takes the values of an image made elsewhere (PNG Info, an imported gallery row) and
keeps only what the form accepts, naming each value it had to change or leave out.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from studio.errors import InvalidRequest, StudioError
from studio.requests import LIMITS, MAX_SIDE, MIN_SIDE, GenerationRequest, LoraSpec, Task

RE_WHOLE = re.compile(r"[+-]?[0-9]{1,40}")


def number(name: str, value: Any, *, whole: bool = True, default: Any = None) -> int | float | None:
    """A form or API value as a number; ``None``/empty -> ``default``. Bounds are the request's.
    Whole numbers given as ints or digits stay exact (no trip through a float, which holds only
    53 bits: the seed box sends text, so 18446744073709551615 arrives as typed)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, bool):
        raise InvalidRequest(name, f"must be a number, got {value!r}")
    if whole and isinstance(value, int):
        return value
    if whole and isinstance(value, str) and RE_WHOLE.fullmatch(value.strip()):
        return int(value.strip())              # exact: a 64-bit seed typed as text stays what was typed
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise InvalidRequest(name, f"must be a number, got {value!r}") from None
    if not math.isfinite(as_float):
        raise InvalidRequest(name, f"must be a finite number, got {value!r}")
    if not whole:
        return as_float
    if as_float != int(as_float):
        raise InvalidRequest(name, f"must be a whole number, got {value!r}")
    return int(as_float)


def parse_loras(text: str | None) -> tuple[LoraSpec, ...]:
    """``name:weight, name2:weight`` (weight 1 when left out) -> LoRA specs, in order."""
    out = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, weight = item.rpartition(":")
        if not sep:
            name, weight = item, "1"
        weight_value = number("loras", weight.strip(), whole=False)
        out.append(LoraSpec(name.strip(), 1.0 if weight_value is None else weight_value))
    return tuple(out)


def format_loras(loras: tuple[LoraSpec, ...]) -> str:
    return ", ".join(f"{x.name}:{x.weight:g}" for x in loras)


@dataclass(frozen=True, slots=True)
class Adapted:
    """What a form can take from foreign values: ``fields`` (only accepted values, by request
    field name) and ``problems`` (one sentence per value changed or left out)."""

    fields: dict[str, Any]
    problems: tuple[str, ...]


def _snap_side(name: str, value: int) -> tuple[int, str]:
    snapped = min(MAX_SIDE, max(MIN_SIDE, round(value / 16) * 16))
    return snapped, ("" if snapped == value else f"{name} {value} became {snapped} (multiples of 16 within "
                                                 f"{MIN_SIDE}..{MAX_SIDE})")


def adapt(fields: dict[str, Any], *, models: list[str], loras: list[str]) -> Adapted:
    """Keep the values the form accepts. Sizes snap to multiples of 16; any other value the request
    would refuse is left out and named, as is a model or LoRA this studio does not have."""
    out: dict[str, Any] = {}
    problems: list[str] = []
    for name in ("prompt", "negative_prompt"):
        if fields.get(name) is not None:
            out[name] = str(fields[name])
    model = fields.get("model_id") or ""
    if model and model in models:
        out["model_id"] = model
    elif model:
        problems.append(f"model {model!r} is not in this studio; the model picker was left as it was")
    for name in ("width", "height"):
        try:
            value = number(name, fields.get(name))
        except InvalidRequest as err:
            problems.append(str(err))
            continue
        if value is not None:
            out[name], note = _snap_side(name, value)
            if note:
                problems.append(note)
    for name, whole in (("steps", True), ("guidance", False), ("seed", True)):
        raw = fields.get(name)
        if raw is None or (name == "seed" and raw in (-1, "-1")):
            continue
        try:
            value = number(name, raw, whole=whole)
            GenerationRequest(prompt="", **{name: value})       # the request's own bounds
        except StudioError as err:
            lo, hi = LIMITS[name]
            problems.append(f"{err} — left as it was (the form takes {lo}..{hi})")
            continue
        out[name] = value
    kept = []
    lo, hi = LIMITS["lora_weight"]
    for lora in fields.get("loras") or ():
        spec = lora if isinstance(lora, LoraSpec) else LoraSpec(**lora)
        if spec.name not in loras:
            problems.append(f"LoRA {spec.name!r} is not in the LoRA folder; left out")
        elif not lo <= spec.weight <= hi:
            problems.append(f"LoRA {spec.name!r} at weight {spec.weight:g} is outside {lo}..{hi}; left out")
        else:
            kept.append(spec)
    out["loras"] = tuple(kept)
    return Adapted(out, tuple(problems))


def start_image(init_image: Any, mask_image: Any, strength: Any) -> tuple[Task, dict[str, Any]]:
    """A tab's optional start image: none = txt2img; an image = img2img at ``strength``; with a mask
    too = inpaint. -> the task and the request fields it adds."""
    if mask_image and not init_image:
        raise InvalidRequest("mask_image", "a mask needs the start image it was painted on")
    if not init_image:
        return Task.TXT2IMG, {}
    extra: dict[str, Any] = dict(init_image=init_image, strength=number("strength", strength, whole=False))
    if mask_image:
        extra["mask_image"] = mask_image
    return (Task.INPAINT if mask_image else Task.IMG2IMG), extra


@dataclass(frozen=True)
class JsonRows:
    """How an API parameter lists more units as JSON, one image each (ControlNet units, adapters)."""
    field: str                   # the parameter: "units"
    noun: str                    # one row: "unit"
    example: str                 # a JSON example for the messages
    known: tuple[str, ...]       # the fields a row may have
    limit: int                   # rows at most, the API's first one included
    limit_field: str             # the request field the limit is on: "controls"
    limit_what: str              # "ControlNet units"


def json_rows(spec: JsonRows, text: Any, images: list[Any], first: int = 1) -> list[tuple[int, dict, Any]]:
    """``[{...}, ...]`` with one image each from ``images`` (in order), checked -> (index, fields, image)
    per row; ``first``: the index of the first row (after the API's own first one)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        if images:
            raise InvalidRequest(spec.field, f"{len(images)} {spec.noun} image(s) but no {spec.field}: describe "
                                             f"each in {spec.field} (a JSON list, e.g. {spec.example})")
        return []
    try:
        data = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as err:
        raise InvalidRequest(spec.field, f"must be a JSON list ({err.msg} at column {err.colno})") from None
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise InvalidRequest(spec.field, f"must be a JSON list of objects, e.g. {spec.example}")
    if len(data) != len(images):
        raise InvalidRequest(spec.field, f"{len(data)} {spec.noun}(s) but {len(images)} {spec.noun} image(s): "
                                         f"give one image per {spec.noun}, in order")
    if first + len(data) > spec.limit:
        raise InvalidRequest(spec.limit_field, f"at most {spec.limit} {spec.limit_what} at once, got "
                                               f"{first + len(data)}")
    for i, fields in enumerate(data):
        unknown = sorted(set(fields) - set(spec.known))
        if unknown:
            raise InvalidRequest(spec.field, f"{spec.noun} {first + i + 1}: unknown field(s) {unknown}; known: "
                                             f"{', '.join(spec.known)}")
    return [(first + i, fields, image) for i, (fields, image) in enumerate(zip(data, images, strict=True))]
