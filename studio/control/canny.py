"""Canny edges (OpenCV), as A1111's ``canny`` module: white edges on black; thresholds low / high
(Threshold A / B, default 100 / 200). Needs no weights: always works, offline too."""

from __future__ import annotations

import numpy as np
from PIL import Image

from studio.control.base import MapSettings, Preprocessor, to_rgb
from studio.errors import InvalidRequest

LOW, HIGH = 100, 200


def thresholds(settings: MapSettings) -> tuple[float, float]:
    low = LOW if settings.threshold_a is None else settings.threshold_a
    high = HIGH if settings.threshold_b is None else settings.threshold_b
    if not (0 <= low <= high <= 255):
        raise InvalidRequest("controls", f"canny thresholds must satisfy 0 <= low <= high <= 255, got low {low:g} "
                                         f"and high {high:g}")
    return low, high


def canny(image: Image.Image, settings: MapSettings = MapSettings(), parts: dict | None = None) -> Image.Image:
    import cv2

    low, high = thresholds(settings)
    return to_rgb(cv2.Canny(np.asarray(image.convert("L")), low, high))


CANNY = Preprocessor("canny", "canny", "Canny edges (OpenCV)", canny, thresholds=("low", "high"), defaults=(LOW, HIGH))
