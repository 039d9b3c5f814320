"""The demo model with its IP-Adapter (models/ip_adapter/demo/: a FLUX adapter and its tiny image
encoder, trained on the demo's shapes): the picture takes the reference's colour when the prompt
names none; scale 0 is exactly no adapter; the next request without it gives the base pixels; with
the demo ControlNet as well, the shape follows the map and the colour the reference. Skipped until
the demo family brings the adapter (and, for the last test, models/controlnet/demo-union/)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from studio.config import ROOT
from studio.requests import ControlUnit, GenerationRequest, ImagePrompt
from tests.ip.conftest import px

DEMO_IP = ROOT / "models" / "ip_adapter" / "demo"
DEMO_UNION = ROOT / "models" / "controlnet" / "demo-union"
pytestmark = pytest.mark.skipif(not (DEMO_IP / "image_encoder" / "config.json").is_file(),
                                reason="models/ip_adapter/demo/ is not here yet (the demo family brings it); "
                                       "these tests run once it is")

# (reference: colour, shape, position, background) x (prompt: shape, position, background), no colour in the prompt
CASES = [(("red", "square", "top", "white"), ("circle", "left", "blue")),
         (("green", "circle", "right", "black"), ("triangle", "centre", "gray")),
         (("yellow", "triangle", "bottom", "blue"), ("square", "right", "black")),
         (("blue", "square", "left", "brown"), ("circle", "top", "white")),
         (("purple", "circle", "centre", "white"), ("square", "bottom", "green")),
         (("orange", "triangle", "left", "gray"), ("circle", "right", "black"))]
SEEDS = (1, 2)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from studio.config import Settings
    from studio.wiring import build_studio

    return build_studio(Settings(models_dir=ROOT / "models", outputs_dir=tmp_path_factory.mktemp("demo-ip"),
                                 offline=True, device="cpu"))


def picture(folder, colour: str, shape: str, position: str, background: str) -> str:
    from studio.demo.dataset import POSITION_PHRASES, POSITIONS, ShapeSpec, render

    cx, cy = POSITIONS[position]
    path = folder / f"{colour}-{shape}-{position}-{background}.png"
    Image.fromarray(render(ShapeSpec(shape, colour, background, position, cx, cy, 15.0,
                                     POSITION_PHRASES[position][0]))).save(path)
    return str(path)


def prompt_of(shape: str, position: str, background: str) -> str:
    where = "in the centre" if position == "centre" else f"at the {position}"
    return f"a {shape} {where} on a {background} background"


def request(demo, prompt: str, *prompts: ImagePrompt, **kw) -> GenerationRequest:
    """As the tab sends it: the demo's own adapter, and the true CFG the model's defaults say."""
    true_cfg = demo.ip_adapter_defaults("demo")["true_cfg_scale"]
    return GenerationRequest(prompt, model_id="demo", image_prompts=prompts, true_cfg_scale=true_cfg, **kw)


def test_the_picture_takes_the_references_colour_when_the_prompt_names_none(demo, tmp_path):
    from studio.demo.classify import classify

    hits, n = 0, 0
    for (colour, r_shape, r_position, r_background), (shape, position, background) in CASES:
        ref = picture(tmp_path, colour, r_shape, r_position, r_background)
        for seed in SEEDS:
            result = demo.generate(request(demo, prompt_of(shape, position, background),
                                           ImagePrompt((ref,), scale=1.0), seed=seed))
            hits += classify(np.asarray(result.images[0].convert("RGB"))).colour == colour
            n += 1
    assert hits / n >= 0.75, f"{hits}/{n} took the reference's colour"     # the trainer measured 27/30


def test_scale_zero_is_exactly_no_adapter_and_the_next_request_is_the_base(demo, tmp_path):
    ref = picture(tmp_path, "red", "square", "top", "white")
    prompt = prompt_of("circle", "left", "blue")
    plain = px(demo.generate(request(demo, prompt, seed=5)).images[0])
    zero = px(demo.generate(request(demo, prompt, ImagePrompt((ref,), scale=0.0), seed=5)).images[0])
    assert np.array_equal(zero, plain)
    full = px(demo.generate(request(demo, prompt, ImagePrompt((ref,), scale=1.0), seed=5)).images[0])
    assert np.abs(full - plain).mean() > 1.0
    assert np.array_equal(px(demo.generate(request(demo, prompt, seed=5)).images[0]), plain)   # reset
    bare = GenerationRequest(prompt, model_id="demo", seed=5)              # and without true CFG either
    assert np.array_equal(px(demo.generate(bare).images[0]), px(demo.generate(bare).images[0]))


@pytest.mark.skipif(not (DEMO_UNION / "config.json").is_file(),
                    reason="models/controlnet/demo-union/ is not here yet (the demo family brings it)")
def test_with_the_demo_controlnet_the_shape_follows_the_map_and_the_colour_the_reference(demo, tmp_path):
    from studio.demo.classify import classify

    votes = {"shape": 0, "colour": 0}
    for (colour, r_shape, r_position, r_background), (shape, position, background) in CASES:
        ref = picture(tmp_path, colour, r_shape, r_position, r_background)
        edge = picture(tmp_path, "white", shape, position, "black")
        for seed in SEEDS:
            unit = ControlUnit("canny", edge, preprocessor="canny", pixel_perfect=True)
            result = demo.generate(request(demo, prompt_of(shape, position, background),
                                           ImagePrompt((ref,), scale=1.0), seed=seed, controls=(unit,)))
            verdict = classify(np.asarray(result.images[0].convert("RGB")))
            votes["shape"] += verdict.best_fit == shape   # which outline won (the strict judge also grades its edges)
            votes["colour"] += verdict.colour == colour
    n = len(CASES) * len(SEEDS)
    rates = {k: v / n for k, v in votes.items()}
    assert rates["shape"] >= 0.5 and rates["colour"] >= 0.75, rates
