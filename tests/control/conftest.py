"""Fixtures of the ControlNet tests: a models folder whose tiny FLUX, SDXL and SD1.5 models name
their own nets per type (studio.json ``controlnets``), with plain and union nets of each family
and tiny depth models in ``preprocessors/``; a studio and a server on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.conftest import offline_studio, serving

OWN_NETS = {"tiny-flux": {"canny": "flux-union", "depth": "flux-union", "pose": "flux-union"},
            "tiny-sdxl": {"canny": "sdxl-canny", "depth": "sdxl-depth"},
            "tiny-sd15": {"canny": "sd15-canny", "depth": "sd15-depth"}}
# name: (kind, base, union, seed, num_mode)
NETS = {"flux-canny": ("flux", "tiny-flux", False, 1, 0), "flux-union": ("flux", "tiny-flux", True, 2, 10),
        "flux-union3": ("flux", "tiny-flux", True, 3, 3), "sdxl-canny": ("sdxl", "tiny-sdxl", False, 4, 0),
        "sdxl-depth": ("sdxl", "tiny-sdxl", False, 5, 0), "sdxl-union": ("sdxl", "tiny-sdxl", True, 6, 0),
        "sd15-canny": ("sd15", "tiny-sd15", False, 7, 0), "sd15-depth": ("sd15", "tiny-sd15", False, 8, 0)}


def px(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def shape_image(path: Path, kind: str = "triangle", size: tuple[int, int] = (64, 64)) -> Path:
    """White shape on black: a map-like control image with clear edges."""
    w, h = size
    image = Image.new("RGB", size, "black")
    draw = ImageDraw.Draw(image)
    if kind == "triangle":
        draw.polygon([(w // 2, h // 8), (w * 7 // 8, h * 7 // 8), (w // 8, h * 7 // 8)], fill="white")
    else:
        draw.ellipse([w // 4, h // 4, w * 3 // 4, h * 3 // 4], fill="white")
    image.save(path)
    return path


@pytest.fixture(scope="session")
def cn_models(tiny_models_dir, tmp_path_factory) -> Path:
    from studio.models.tiny import save_tiny_controlnet, save_tiny_depth

    root = tmp_path_factory.mktemp("cn-models")
    for name, own in OWN_NETS.items():
        target = root / "checkpoints" / name
        shutil.copytree(tiny_models_dir / "checkpoints" / name, target)
        meta = json.loads((target / "studio.json").read_text())
        (target / "studio.json").write_text(json.dumps({**meta, "controlnets": own,
                                                        "label": f"{name} (tiny test model, random weights)"}))
    for name, (kind, base, union, seed, num_mode) in NETS.items():
        save_tiny_controlnet(kind, root / "checkpoints" / base, root / "controlnet" / name, union=union, seed=seed,
                             num_mode=num_mode or 10)
    save_tiny_depth("depth_anything", root / "preprocessors" / "depth_anything_v2")
    save_tiny_depth("dpt", root / "preprocessors" / "depth_dpt", seed=1)
    return root


@pytest.fixture(scope="session")
def cn_studio(cn_models, tmp_path_factory):
    return offline_studio(cn_models, tmp_path_factory.mktemp("cn-outputs"))


@pytest.fixture(scope="session")
def shapes(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("shapes")
    return {"triangle": shape_image(folder / "triangle.png"), "circle": shape_image(folder / "circle.png", "circle"),
            "wide": shape_image(folder / "wide.png", "circle", (128, 64))}


@pytest.fixture(scope="session")
def cn_server(cn_models, tmp_path_factory):
    """A real server on the ControlNet models (default model tiny-flux) -> (url, studio)."""
    with serving(cn_models, tmp_path_factory.mktemp("cn-server-outputs"), default_model="tiny-flux") as served:
        yield served.url, served.studio
