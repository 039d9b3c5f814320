"""The demo model with its union ControlNet (models/controlnet/demo-union/, canny 0 and depth 2):
when map and prompt disagree, the map wins the shape and the place and the prompt the colour; a
unit at scale 0 is exactly no unit. Skipped until the demo family brings the net."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from studio.config import ROOT
from studio.requests import ControlUnit, GenerationRequest
from tests.control.conftest import px

DEMO_UNION = ROOT / "models" / "controlnet" / "demo-union"
pytestmark = pytest.mark.skipif(not (DEMO_UNION / "config.json").is_file(),
                                reason="models/controlnet/demo-union/ is not here yet (the demo family brings it); "
                                       "these tests run once it is")

# (the map: shape, position) x (the prompt: colour, shape, position, background), all contradicting
CONFLICTS = [(("triangle", "left"), ("red", "circle", "right", "blue")),
             (("square", "right"), ("green", "triangle", "left", "white")),
             (("circle", "top"), ("blue", "square", "bottom", "gray")),
             (("triangle", "bottom"), ("yellow", "square", "top", "black")),
             (("square", "centre"), ("purple", "circle", "left", "green")),
             (("circle", "left"), ("orange", "triangle", "top", "brown"))]
SEEDS = (1, 2)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from studio.config import Settings
    from studio.wiring import build_studio

    return build_studio(Settings(models_dir=ROOT / "models", outputs_dir=tmp_path_factory.mktemp("demo-cn"),
                                 offline=True, device="cpu"))


def control_image(folder, shape: str, position: str):
    from studio.demo.dataset import POSITIONS, POSITION_PHRASES, ShapeSpec, render

    cx, cy = POSITIONS[position]
    path = folder / f"{shape}-{position}.png"
    Image.fromarray(render(ShapeSpec(shape, "white", "black", position, cx, cy, 15.0,
                                     POSITION_PHRASES[position][0]))).save(path)
    return str(path)


def canny_unit(image: str, scale: float = 1.0, kind: str = "canny") -> ControlUnit:
    return ControlUnit(kind, image, scale=scale, preprocessor="canny", pixel_perfect=True)   # the demo's own net


def test_the_map_wins_the_shape_and_place_the_prompt_the_colour(demo, tmp_path):
    from studio.demo.classify import classify
    from studio.demo.dataset import caption_for

    votes = {"shape": 0, "position": 0, "colour": 0}
    for (shape, position), (colour, p_shape, p_position, background) in CONFLICTS:
        image = control_image(tmp_path, shape, position)
        for seed in SEEDS:
            result = demo.generate(GenerationRequest(caption_for(p_shape, colour, background, p_position), seed=seed,
                                                     controls=(canny_unit(image),)))
            verdict = classify(np.asarray(result.images[0].convert("RGB")))
            votes["shape"] += verdict.best_fit == shape   # which outline won (the strict judge also grades its edges)
            votes["position"] += verdict.position == position
            votes["colour"] += verdict.colour == colour
    n = len(CONFLICTS) * len(SEEDS)
    rates = {k: v / n for k, v in votes.items()}
    # the trainer measured shape 0.63, place 0.87, colour 1.00 with contradicting captions
    assert rates["shape"] >= 0.5 and rates["position"] >= 0.75 and rates["colour"] >= 0.9, rates


def test_scale_zero_is_exactly_no_control_and_a_unit_at_zero_changes_nothing(demo, tmp_path):
    triangle, circle = control_image(tmp_path, "triangle", "left"), control_image(tmp_path, "circle", "right")
    prompt = "a red square at the top on a blue background"

    def draw(*units: ControlUnit):
        return px(demo.generate(GenerationRequest(prompt, seed=5, controls=units)).images[0])

    plain = draw()
    assert np.array_equal(draw(canny_unit(triangle, scale=0.0)), plain)
    one = draw(canny_unit(triangle))
    assert np.abs(one - plain).mean() > 1.0
    assert np.array_equal(draw(canny_unit(triangle), canny_unit(circle, scale=0.0, kind="depth")), one)
