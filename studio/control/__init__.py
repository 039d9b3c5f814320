"""Preprocessors: an input image -> the control map a ControlNet reads. One per file, the same
interface: ``fn(image: PIL.Image, unit: ControlUnit) -> PIL.Image`` (RGB, the input's size).

``none`` means the image is a map already. The ControlNet tab's issue grows this table (depth,
pose); a name not in it is refused with the ones there are.
"""

from __future__ import annotations

from collections.abc import Callable

from studio.control.canny import canny
from studio.errors import InvalidRequest

PREPROCESSORS: dict[str, Callable] = {"canny": canny}


def preprocessor(name: str) -> Callable | None:
    """The function for ``name``; ``None`` for "none" (the image is the map)."""
    if name in ("", "none"):
        return None
    if name not in PREPROCESSORS:
        raise InvalidRequest("controls", f"no preprocessor {name!r} here; use one of "
                                         f"{['none', *PREPROCESSORS]} (none: the image is a control map already)")
    return PREPROCESSORS[name]
