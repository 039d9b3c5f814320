"""img2img, inpaint and outpaint on the demo model, through the studio (no Gradio): what issue 12
states, and nothing that depends on the model's exact pixels (it may be retrained)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from studio.requests import GenerationRequest, Task

PROMPT = "a red circle at the left on a blue background"


def px(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from studio.config import ROOT, Settings
    from studio.wiring import build_studio

    out = tmp_path_factory.mktemp("demo-i2i")
    return build_studio(Settings(models_dir=ROOT / "models", outputs_dir=out / "outputs", offline=True, device="cpu",
                                 default_model="demo"))


@pytest.fixture(scope="module")
def init(demo, tmp_path_factory):
    """A demo picture (64x64) saved as a user's file."""
    path = tmp_path_factory.mktemp("demo-init") / "init.png"
    demo.generate(GenerationRequest(PROMPT, seed=11)).images[0].save(path)
    return path


def test_strength_005_returns_the_init_image_within_vae_error(demo, init):
    out = demo.generate(GenerationRequest(PROMPT, task=Task.IMG2IMG, init_image=str(init), strength=0.05, seed=3))
    assert out.images[0].size == (64, 64)
    assert np.abs(px(out.images[0]) - px(Image.open(init))).mean() <= 3      # mean abs diff <= 3/255


def test_strength_1_follows_the_prompts_colour(demo, init):
    from studio.demo.classify import classify

    for colour, background in (("green", "white"), ("yellow", "black")):
        prompt = f"a {colour} square in the centre on a {background} background"
        out = demo.generate(GenerationRequest(prompt, task=Task.IMG2IMG, init_image=str(init), strength=1.0, seed=5))
        verdict = classify(np.asarray(out.images[0].convert("RGB")))
        assert (verdict.colour, verdict.background) == (colour, background), verdict


def blurred(mask: Image.Image, blur: int) -> np.ndarray:
    return np.asarray(mask.filter(ImageFilter.GaussianBlur(blur)) if blur else mask)


@pytest.mark.parametrize("area, mode", [("whole", "masked"), ("only_masked", "masked"), ("whole", "not_masked")])
def test_inpaint_changes_no_pixel_outside_the_blurred_mask(demo, init, tmp_path, area, mode):
    painted = Image.new("L", (64, 64), 0)
    painted.paste(255, (40, 36, 60, 60))                             # a corner: "only masked" crops there
    painted.save(tmp_path / "mask.png")
    req = GenerationRequest("a yellow triangle at the right on a blue background", task=Task.INPAINT,
                            init_image=str(init), mask_image=str(tmp_path / "mask.png"), strength=1.0, seed=2,
                            mask_blur=4, inpaint_area=area, mask_mode=mode, mask_padding=8)
    out = demo.generate(req)
    redraw = painted if mode == "masked" else Image.eval(painted, lambda v: 255 - v)
    soft = blurred(redraw, 4)
    before, after = px(Image.open(init)), px(out.images[0])
    assert np.array_equal(after[soft == 0], before[soft == 0])
    assert np.array_equal(after[np.asarray(redraw) == 0], before[np.asarray(redraw) == 0])   # not even the blur
    assert np.abs(after[soft > 200] - before[soft > 200]).mean() > 5
    again = demo.generate(out.request)                             # the resolved request makes it again
    assert np.array_equal(px(again.images[0]), after)


def test_outpaint_by_32_px_gives_96x64_with_the_original_area_unchanged(demo, init):
    outputs = demo.sink.outputs_dir
    req = demo.outpaint(GenerationRequest("a red circle at the left on a green background", task=Task.IMG2IMG,
                                          init_image=str(init), strength=1.0, seed=9), right=32)
    assert req.task is Task.INPAINT and req.init_image.startswith("inputs/") and req.mask_image.startswith("inputs/")
    canvas, mask = (Image.open(outputs / ref) for ref in (req.init_image, req.mask_image))
    assert canvas.size == mask.size == (96, 64)
    out = demo.generate(req)
    image = px(out.images[0])
    assert out.images[0].size == (96, 64) and (out.request.width, out.request.height) == (96, 64)
    assert np.array_equal(image[:, :64], px(Image.open(init)))          # the original area, unchanged
    assert np.abs(image[:, 64:] - px(canvas)[:, 64:]).mean() > 1        # the new area was inpainted
    image_id = out.saved[0].image_id
    assert set(demo.sink.store.inputs_of([image_id])[image_id]) == {req.init_image, req.mask_image}
    again = demo.generate(demo.sink.store.request_of(image_id))          # re-generate: the same pixels
    assert np.array_equal(px(again.images[0]), image)
