from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from studio.gallery.sink import GallerySink  # noqa: E402
from studio.gallery.store import GalleryStore  # noqa: E402
from studio.requests import GenerationRequest, LoraSpec  # noqa: E402


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    path = tmp_path / "outputs"
    path.mkdir()
    return path


@pytest.fixture
def store(outputs: Path):
    with GalleryStore(outputs) as s:
        yield s


@pytest.fixture
def entry():
    return SimpleNamespace(id="tiny-random", label="tiny", spec=SimpleNamespace(source="tiny-random", kind="builtin"))


@pytest.fixture
def sink(store):
    return GallerySink(store)


def request(prompt: str = "a red cat", *, seed: int = 7, loras=(), **kw) -> GenerationRequest:
    base = dict(prompt=prompt, model_id="tiny-random", width=64, height=64, steps=4, guidance=0.0,
                seed=seed, scheduler="Euler", loras=tuple(LoraSpec(*x) if isinstance(x, tuple) else x for x in loras))
    base.update(kw)
    return GenerationRequest(**base)


def image(color=(200, 10, 10)) -> Image.Image:
    return Image.new("RGB", (64, 64), color)
