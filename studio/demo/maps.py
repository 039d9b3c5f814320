"""Control maps of demo pictures, as a user would make them from a picture.

- canny: OpenCV's Canny edges of the rendered picture (thresholds 100 / 200, as the usual
  preprocessors use), white on black, RGB;
- depth: a near/far image of the scene, near bright: the shape stands in front (bright, 220),
  the background is a floor that comes nearer toward the bottom (40 at the top to 90 at the
  bottom), antialiased like the pictures.

Mode numbers are the FLUX union ControlNets' (InstantX / Shakker-Labs Union): canny 0, depth 2.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw

from .dataset import SUPERSAMPLE, ShapeSpec, _draw, render

CONTROL_MODES: dict[str, int] = {"canny": 0, "tile": 1, "depth": 2, "blur": 3, "pose": 4, "gray": 5, "lq": 6}
TRAINED_MODES = ("canny", "depth")
CANNY_THRESHOLDS = (100, 200)
NEAR, FAR_TOP, FAR_BOTTOM = 220, 40, 90


def canny(image: np.ndarray) -> np.ndarray:
    """Canny edges of an RGB uint8 picture -> RGB uint8, white edges on black."""
    edges = cv2.Canny(np.ascontiguousarray(image), *CANNY_THRESHOLDS)
    return np.repeat(edges[..., None], 3, axis=-1)


def depth(spec: ShapeSpec) -> np.ndarray:
    """The near/far image of a spec's scene -> RGB uint8 (near bright)."""
    s = SUPERSAMPLE
    w, h = spec.width * s, spec.height * s
    floor = np.linspace(FAR_TOP, FAR_BOTTOM, h)[:, None].repeat(w, axis=1)
    img = Image.fromarray(floor.round().astype(np.uint8), "L")
    _draw(ImageDraw.Draw(img), spec.shape, spec.cx, spec.cy, spec.r, NEAR, s)
    grey = np.asarray(img.resize((spec.width, spec.height), Image.Resampling.BOX))
    return np.repeat(grey[..., None], 3, axis=-1)


def control_map(spec: ShapeSpec, mode: str) -> np.ndarray:
    if mode == "canny":
        return canny(render(spec))
    if mode == "depth":
        return depth(spec)
    raise ValueError(f"control mode {mode!r} is not one the demo ControlNet was trained on; expected one of {TRAINED_MODES}")
