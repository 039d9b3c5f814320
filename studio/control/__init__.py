"""Preprocessors: an input image -> the control map a ControlNet reads. One per file (canny.py,
depth.py, pose.py), the same interface (``base.Preprocessor``: a pure ``run(image, settings,
parts)``); the table below keys them by the type of map they make, the first of each type its
default. ``none``: the image is a map already (always works, as Canny does; the others need
weights, leased through the model manager by ``make_map``'s ``lease``).

Names are A1111's module names, so infotexts read both ways.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PIL import Image

from studio.control.base import MapSettings, Part, Preprocessor, working_size
from studio.control.canny import CANNY
from studio.control.depth import DEPTH
from studio.control.pose import POSE
from studio.errors import InvalidRequest

NONE = "none"
BY_TYPE: dict[str, tuple[Preprocessor, ...]] = {"canny": (CANNY,), "depth": DEPTH, "pose": POSE}
PREPROCESSORS: dict[str, Preprocessor] = {p.name: p for group in BY_TYPE.values() for p in group}
CONTROL_TYPES = tuple(BY_TYPE)
Lease = Callable[[Part], Any]        # a part -> its detector (the model manager's component)


def preprocessor(name: str) -> Preprocessor | None:
    """The preprocessor called ``name``; ``None`` for "none" (the image is the map)."""
    if name in ("", NONE):
        return None
    if name not in PREPROCESSORS:
        raise InvalidRequest("controls", f"no preprocessor {name!r} here; use one of "
                                         f"{[NONE, *PREPROCESSORS]} (none: the image is a control map already)")
    return PREPROCESSORS[name]


def default_for(control_type: str) -> str:
    """The type's default preprocessor ("none" for a type without one: tile, blur...)."""
    group = BY_TYPE.get(control_type)
    return group[0].name if group else NONE


def choices(control_type: str) -> list[str]:
    """The preprocessors that make a ``control_type`` map, its default first, then "none"."""
    return [p.name for p in BY_TYPE.get(control_type, ())] + [NONE]


def make_map(unit, image: Image.Image, *, lease: Lease) -> Image.Image | None:  # noqa: ANN001 - ControlUnit
    """The unit's control map: ``image`` at its working size (short side = ``unit.resolution``),
    through the unit's preprocessor with its detector parts from ``lease``. ``None``: the image
    is the map (preprocessor "none")."""
    pre = preprocessor(unit.preprocessor)
    if pre is None:
        return None
    settings = MapSettings.of(unit)
    parts = {part.key: lease(part) for part in pre.parts}
    source = image.convert("RGB")
    size = working_size(source.size, settings.resolution)
    work = source if size == source.size else source.resize(size, Image.Resampling.LANCZOS)
    return pre.run(work, settings, parts)


__all__ = ["BY_TYPE", "CONTROL_TYPES", "PREPROCESSORS", "MapSettings", "Part", "Preprocessor", "choices",
           "default_for", "make_map", "preprocessor"]
