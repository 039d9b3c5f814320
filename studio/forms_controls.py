"""ControlNet units from form or raw API values. Plain Python, no Gradio.

One unit's values (``unit``) come from the ControlNet tab's widgets or the ``/controlnet`` API's
first-unit parameters; more units come as JSON (``units_from_json``): a list of objects with the
ControlUnit field names, whose images are the API's ``unit_images``, in order. Errors name the
field and the unit.
"""

from __future__ import annotations

import math
from typing import Any

from studio import control
from studio.errors import InvalidRequest
from studio.forms import JsonRows, json_rows, number
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


UNITS = JsonRows(field="units", noun="unit", example='[{"type": "depth", "scale": 0.6}]', known=UNIT_FIELDS,
                 limit=MAX_CONTROLS, limit_field="controls", limit_what="ControlNet units")


def units_from_json(text: Any, images: list[str] | None, first: int = 1) -> list[ControlUnit]:
    """``[{"type": "depth", "scale": 0.6}, ...]`` with one image each from ``images`` (in order).
    ``first``: the index of the first of these units (after the API's own first unit)."""
    return [unit(i, image=image, **fields) for i, fields, image in json_rows(UNITS, text, list(images or []), first)]
