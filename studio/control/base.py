"""What every preprocessor shares: its settings, its description, the working size.

A preprocessor is a pure function ``run(image, settings, parts) -> map``: ``image`` is RGB at the
working size (its short side = ``settings.resolution``), ``parts`` its detectors by key (leased
through the model manager by the caller; empty for Canny), and the map is an RGB image of the
working size. No Gradio, no diffusers, no module state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from studio.control.weights import Weights

MIN_RESOLUTION, MAX_RESOLUTION = 64, 4096


@dataclass(frozen=True, slots=True)
class MapSettings:
    """A unit's preprocessor settings (A1111: Processor Res, Threshold A / B)."""

    resolution: int = 512
    threshold_a: float | None = None
    threshold_b: float | None = None

    @classmethod
    def of(cls, unit) -> MapSettings:  # noqa: ANN001 - a ControlUnit
        return cls(unit.resolution, unit.threshold_a, unit.threshold_b)


@dataclass(frozen=True, slots=True)
class Part:
    """One set of detector weights: where they come from and how a folder becomes the detector.
    ``key`` names it in the model manager (one load per key)."""

    key: str
    weights: Weights
    load: Callable[[Path], Any]


@dataclass(frozen=True, slots=True)
class Preprocessor:
    name: str                                  # A1111's module name (infotext "Module")
    type: str                                  # the map it makes: canny | depth | pose
    label: str
    run: Callable[[Image.Image, MapSettings, dict[str, Any]], Image.Image]
    parts: tuple[Part, ...] = ()               # detector weights (none: always works)
    thresholds: tuple[str, ...] = ()           # what threshold_a / threshold_b mean here
    defaults: tuple[float, ...] = ()           # and their defaults


def working_size(size: tuple[int, int], resolution: int) -> tuple[int, int]:
    """``size`` scaled so that its short side is ``resolution`` (A1111's Processor Res)."""
    w, h = size
    k = resolution / min(w, h)
    return max(1, round(w * k)), max(1, round(h * k))


def pixel_perfect(image_size: tuple[int, int], output_size: tuple[int, int]) -> int:
    """The resolution at which one map pixel lands on one output pixel (A1111's pixel perfect,
    "Crop and Resize": the image is scaled to cover the output), within 64..4096."""
    (w, h), (W, H) = image_size, output_size
    k = max(W / w, H / h)
    return int(min(MAX_RESOLUTION, max(MIN_RESOLUTION, round(k * min(w, h)))))


def to_rgb(array) -> Image.Image:  # noqa: ANN001 - numpy HxW or HxWx3 uint8
    import numpy as np

    array = np.asarray(array)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return Image.fromarray(array.astype("uint8"), "RGB")
