"""Canny edges (OpenCV), as A1111's ``canny`` module: thresholds 100 / 200, white edges on black."""

from __future__ import annotations

import numpy as np
from PIL import Image

LOW, HIGH = 100, 200


def canny(image: Image.Image, unit=None) -> Image.Image:  # noqa: ANN001 - a ControlUnit, unused settings
    import cv2

    gray = np.asarray(image.convert("L"))
    edges = cv2.Canny(gray, LOW, HIGH)
    return Image.fromarray(np.stack([edges] * 3, axis=-1))
