"""ControlNet units from form or raw API values. Plain Python, no Gradio.

One unit's values (``unit``) come from the ControlNet tab's widgets or the ``/controlnet`` API's
first-unit parameters; more units come as JSON (``units_from_json``): a list of objects with the
ControlUnit field names, whose images are the API's ``unit_images``, in order. Errors name the
field and the unit.
"""

from __future__ import annotations

import json
import math
from typing import Any

from studio import control
from studio.errors import InvalidRequest
from studio.forms import number
from studio.requests import MAX_CONTROLS, ControlUnit

UNIT_FIELDS = ("type", "model", "mode", "preprocessor", "scale", "start", "end", "resolution", "pixel_perfect",
               "threshold_a", "threshold_b")


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _bool(name: str, value: Any) -> bool:
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidRequest(name, f"must be true or false, got {value!r}")


def _float(name: str, value: Any, default: float | None) -> float | None:
    got = number(name, value, whole=False, default=default)
    return None if got is None or (isinstance(got, float) and math.isnan(got)) else got


def unit(index: int, *, image: Any, type: Any = "canny", model: Any = "", mode: Any = "",  # noqa: A002
         preprocessor: Any = "", scale: Any = 1.0, start: Any = 0.0, end: Any = 1.0, resolution: Any = 512,
         pixel_perfect: Any = False, threshold_a: Any = None, threshold_b: Any = None,
         as_is: Any = False) -> ControlUnit:
    """One unit (``index`` counts from 0). An empty preprocessor is the type's default; ``as_is``
    ("use the map as is") means "none"."""
    where = f"controls: unit {index + 1}"
    if not image:
        raise InvalidRequest("controls", f"unit {index + 1} is enabled but has no image: add one, or turn the "
                                         "unit off")
    kind = _text(type) or "canny"
    pre = control.NONE if _bool(where, as_is) else (_text(preprocessor) or control.default_for(kind))
    if not getattr(control.preprocessor(pre), "thresholds", ()):       # only canny reads them
        threshold_a = threshold_b = None
    return ControlUnit(type=kind, image=str(image), model=_text(model), mode=_text(mode), preprocessor=pre,
                       scale=_float(f"{where} scale", scale, 1.0), start=_float(f"{where} start", start, 0.0),
                       end=_float(f"{where} end", end, 1.0),
                       resolution=number(f"{where} resolution", resolution, default=512),
                       pixel_perfect=_bool(f"{where} pixel_perfect", pixel_perfect),
                       threshold_a=_float(f"{where} threshold_a", threshold_a, None),
                       threshold_b=_float(f"{where} threshold_b", threshold_b, None))


def units_from_json(text: Any, images: list[str] | None, first: int = 1) -> list[ControlUnit]:
    """``[{"type": "depth", "scale": 0.6}, ...]`` with one image each from ``images`` (in order).
    ``first``: the index of the first of these units (after the API's own first unit)."""
    images = list(images or [])
    if text is None or (isinstance(text, str) and not text.strip()):
        if images:
            raise InvalidRequest("units", f"{len(images)} unit image(s) but no units: describe each in units "
                                          '(a JSON list, e.g. [{"type": "depth"}])')
        return []
    try:
        data = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as err:
        raise InvalidRequest("units", f"must be a JSON list of units ({err.msg} at column {err.colno})") from None
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise InvalidRequest("units", 'must be a JSON list of objects, e.g. [{"type": "depth", "scale": 0.6}]')
    if len(data) != len(images):
        raise InvalidRequest("units", f"{len(data)} unit(s) but {len(images)} unit image(s): give one image per "
                                      "unit, in order")
    if first + len(data) > MAX_CONTROLS:
        raise InvalidRequest("controls", f"at most {MAX_CONTROLS} ControlNet units at once, got {first + len(data)}")
    out = []
    for i, (fields, image) in enumerate(zip(data, images, strict=True)):
        unknown = sorted(set(fields) - set(UNIT_FIELDS))
        if unknown:
            raise InvalidRequest("units", f"unit {first + i + 1}: unknown field(s) {unknown}; known: "
                                          f"{', '.join(UNIT_FIELDS)}")
        out.append(unit(first + i, image=image, **fields))
    return out
