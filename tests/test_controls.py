"""ControlNets through the studio: a union FLUX net with modes, an SD1.5 net, several at once,
with img2img and inpaint; maps are made once and stored; scale 0 is exactly "off"."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.requests import ControlUnit, GenerationRequest, Task


def px(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def studio(tiny_models_dir, tiny_controlnets, tmp_path_factory):
    from studio.config import Settings
    from studio.wiring import build_studio

    return build_studio(Settings(models_dir=tiny_models_dir, outputs_dir=tmp_path_factory.mktemp("cn-out"),
                                 offline=True, device="cpu"))


@pytest.fixture(scope="module")
def shape(tmp_path_factory):
    image = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(image).polygon([(32, 8), (56, 56), (8, 56)], fill="white")
    path = tmp_path_factory.mktemp("maps") / "triangle.png"
    image.save(path)
    return path


@pytest.mark.parametrize("model, net, task", [("tiny-flux", "flux", Task.TXT2IMG), ("tiny-flux", "flux", Task.IMG2IMG),
                                              ("tiny-flux", "flux", Task.INPAINT), ("tiny-sd15", "sd15", Task.TXT2IMG),
                                              ("tiny-sd15", "sd15", Task.INPAINT)])
def test_a_control_changes_the_image_and_scale_zero_is_off(studio, tiny_controlnets, shape, tmp_path, model, net, task):
    extra = {}
    if task is not Task.TXT2IMG:
        extra["init_image"] = str(shape)
    if task is Task.INPAINT:
        mask = Image.new("L", (64, 64), 255)
        mask.save(tmp_path / "mask.png")
        extra["mask_image"] = str(tmp_path / "mask.png")

    def run(scale):
        unit = ControlUnit("canny", str(shape), model=tiny_controlnets[net], scale=scale, preprocessor="canny")
        return studio.generate(GenerationRequest("a cat", model_id=model, task=task, seed=4, steps=2,
                                                 controls=(unit,), **extra))

    on, again, off = run(1.0), run(1.0), run(0.0)
    plain = studio.generate(GenerationRequest("a cat", model_id=model, task=task, seed=4, steps=2, **extra))
    assert np.array_equal(px(on.images[0]), px(again.images[0]))
    assert np.abs(px(on.images[0]) - px(plain.images[0])).mean() > 0.5
    assert np.array_equal(px(off.images[0]), px(plain.images[0]))
    unit = on.request.controls[0]
    assert unit.image.startswith("inputs/") and unit.map.startswith("inputs/") and unit.map != unit.image
    edges = np.asarray(Image.open(studio.sink.outputs_dir / unit.map).convert("L"))
    assert set(np.unique(edges)) <= {0, 255} and (edges == 255).sum() > 20        # canny's white edges


def test_union_modes_and_several_nets_at_once(studio, tiny_controlnets, shape):
    union = tiny_controlnets["flux"]
    canny = ControlUnit("canny", str(shape), model=union, preprocessor="canny")
    depth = ControlUnit("depth", str(shape), model=union, scale=0.7)            # the image is the map here
    both = studio.generate(GenerationRequest("a cat", model_id="tiny-flux", seed=4, steps=2, controls=(canny, depth)))
    one = studio.generate(GenerationRequest("a cat", model_id="tiny-flux", seed=4, steps=2, controls=(canny,)))
    as_depth = studio.generate(GenerationRequest("a cat", model_id="tiny-flux", seed=4, steps=2,
                                                 controls=(ControlUnit("canny", str(shape), model=union, mode="depth",
                                                                       preprocessor="canny"),)))
    assert np.abs(px(both.images[0]) - px(one.images[0])).mean() > 0.5
    assert not np.array_equal(px(as_depth.images[0]), px(one.images[0]))        # the mode number reaches the net
    assert both.request.controls[1].map == ""                                  # no preprocessor: no separate map


def test_regenerate_reuses_the_stored_map(studio, tiny_controlnets, shape, tmp_path):
    from studio.gallery import browse

    upload = tmp_path / "upload.png"
    upload.write_bytes(shape.read_bytes())
    first = studio.generate(GenerationRequest("a cat", model_id="tiny-sd15", seed=9, steps=2, controls=(
        ControlUnit("canny", str(upload), model=tiny_controlnets["sd15"], preprocessor="canny"),)))
    upload.unlink()
    again = browse.regenerate(studio, studio.sink.store, first.saved[0].image_id)
    assert np.array_equal(px(first.images[0]), px(again.images[0]))
    assert again.request.controls == first.request.controls
