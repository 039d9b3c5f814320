"""IP-Adapter image prompts through the studio (tiny real FLUX, SDXL, SD1.5 and tiny random adapters):
a scale shows in the pixels, scale 0 is the plain image, and after a lease with an adapter every
task pipeline of the model (they share its transformer/UNet) gives its plain pixels again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from studio.requests import GenerationRequest, ImagePrompt, Task
from tests.conftest import offline_studio
from tests.ip.conftest import red_and_green

FAMILIES = {"tiny-flux": "flux", "tiny-sdxl": "sdxl", "tiny-sd15": "sd15"}


def px(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def models_dir(tiny_models_dir, tmp_path_factory) -> Path:
    """The tiny models (linked), a tiny IP-Adapter per family in ip_adapter/ (named after the model)
    and ``tiny-sd15-ip``: tiny-sd15 whose studio.json names its own adapter."""
    from diffusers import DiffusionPipeline

    from studio.models.tiny import save_tiny_ip_adapter

    root = tmp_path_factory.mktemp("ip-models")
    (root / "checkpoints").mkdir()
    for model_id, kind in FAMILIES.items():
        source = tiny_models_dir / "checkpoints" / model_id
        (root / "checkpoints" / model_id).symlink_to(source, target_is_directory=True)
        save_tiny_ip_adapter(kind, root / "ip_adapter" / f"{model_id}-ip", DiffusionPipeline.from_pretrained(source))
    own = root / "checkpoints" / "tiny-sd15-ip"
    own.mkdir()
    for part in (tiny_models_dir / "checkpoints" / "tiny-sd15").iterdir():
        if part.name != "studio.json":
            (own / part.name).symlink_to(part, target_is_directory=part.is_dir())
    (own / "studio.json").write_text(json.dumps({"width": 64, "height": 64, "default_steps": 4,
                                                 "ip_adapter": "tiny-sd15-ip"}))
    return root


@pytest.fixture(scope="module")
def studio(models_dir, tmp_path_factory):
    return offline_studio(models_dir, tmp_path_factory.mktemp("ip-out"))


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> tuple[Path, Path]:
    """Two references (a red disc, a green bar)."""
    return red_and_green(tmp_path_factory.mktemp("ip-pictures"))


def generate(studio, model: str, *prompts: ImagePrompt, **kw):
    req = GenerationRequest("a cat", model_id=model, seed=5, steps=3, image_prompts=prompts, **kw)
    return px(studio.generate(req).images[0])


@pytest.mark.parametrize("model", list(FAMILIES))
def test_scale_shows_in_the_pixels_and_scale_zero_is_the_plain_image(studio, pictures, model):
    red = str(pictures[0])
    plain = generate(studio, model)
    zero = generate(studio, model, ImagePrompt((red,), adapter=f"{model}-ip", scale=0.0))
    full = generate(studio, model, ImagePrompt((red,), adapter=f"{model}-ip", scale=1.0))
    assert np.array_equal(zero, plain)
    assert np.abs(full - plain).mean() > 2


@pytest.mark.parametrize("model", list(FAMILIES))
def test_after_an_image_prompt_every_task_gives_its_plain_pixels_again(studio, pictures, model):
    red = str(pictures[0])
    photo = str(pictures[1])
    i2i = dict(task=Task.IMG2IMG, init_image=photo, strength=0.7)
    before_txt, before_i2i = generate(studio, model), generate(studio, model, **i2i)
    with_ip = generate(studio, model, ImagePrompt((red,), adapter=f"{model}-ip", scale=1.0), **i2i)
    assert not np.array_equal(with_ip, before_i2i)          # the img2img sibling took the adapter
    generate(studio, model, ImagePrompt((red,), adapter=f"{model}-ip", scale=1.0))
    assert np.array_equal(generate(studio, model), before_txt)
    assert np.array_equal(generate(studio, model, **i2i), before_i2i)


def test_one_scale_per_adapter_in_request_order(studio, pictures):
    red, green = (str(p) for p in pictures)
    ip = "tiny-sd15-ip"
    alone = generate(studio, "tiny-sd15", ImagePrompt((red,), adapter=ip, scale=1.0))
    first_only = generate(studio, "tiny-sd15", ImagePrompt((red,), adapter=ip, scale=1.0),
                          ImagePrompt((green,), adapter=ip, scale=0.0))
    second_only = generate(studio, "tiny-sd15", ImagePrompt((red,), adapter=ip, scale=0.0),
                           ImagePrompt((green,), adapter=ip, scale=1.0))
    assert np.array_equal(first_only, alone)
    assert not np.array_equal(second_only, alone)


def test_the_models_own_adapter_from_its_studio_json(studio, pictures):
    red = str(pictures[0])
    named = generate(studio, "tiny-sd15-ip", ImagePrompt((red,), adapter="tiny-sd15-ip", scale=0.8))
    own = generate(studio, "tiny-sd15-ip", ImagePrompt((red,), scale=0.8))
    assert np.array_equal(own, named)
    assert not np.array_equal(own, generate(studio, "tiny-sd15-ip"))
