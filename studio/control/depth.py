"""Depth maps with transformers' ``depth-estimation`` pipeline: near is bright, as ControlNet depth
nets expect. Depth Anything V2 small by default; DPT (large) and MiDaS (DPT hybrid, the weights of
A1111's ``depth_midas``) as alternatives. Each model is one hub repo, or the same files in
``models/preprocessors/<name>/``."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from studio.control.base import MapSettings, Part, Preprocessor, to_rgb
from studio.control.weights import Weights

_FILES = dict(files=("config.json", "preprocessor_config.json"), one_of=("model.safetensors", "pytorch_model.bin"))
MODELS: dict[str, Weights] = {
    "depth_anything_v2": Weights("depth-anything/Depth-Anything-V2-Small-hf", "depth_anything_v2",
                                 "Depth Anything V2 small", **_FILES),
    "depth_dpt": Weights("Intel/dpt-large", "depth_dpt", "DPT large", **_FILES),
    "depth_midas": Weights("Intel/dpt-hybrid-midas", "depth_midas", "MiDaS v3 (DPT hybrid)", **_FILES),
}


def load_estimator(folder: Path):
    """The depth-estimation pipeline of a model folder (CPU)."""
    from transformers import pipeline

    return pipeline("depth-estimation", model=str(folder), device="cpu")


def depth(image: Image.Image, settings: MapSettings, parts: dict) -> Image.Image:
    (estimator,) = parts.values()
    out = estimator(image.convert("RGB"))["depth"]          # "L", the input's size, 0..255
    if out.size != image.size:
        out = out.resize(image.size, Image.Resampling.BICUBIC)
    return to_rgb(out)


def _preprocessor(name: str, label: str) -> Preprocessor:
    weights = MODELS[name]
    return Preprocessor(name, "depth", label, depth, parts=(Part(f"depth/{weights.repo}", weights, load_estimator),))


DEPTH = (_preprocessor("depth_anything_v2", "Depth Anything V2 small (default)"),
         _preprocessor("depth_dpt", "DPT large"),
         _preprocessor("depth_midas", "MiDaS (DPT hybrid)"))
