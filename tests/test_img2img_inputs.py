"""The pure PIL steps of img2img and inpaint (studio/engine/inputs.py): resize modes, the size from
the image, mask rules, "only masked" crops, the overlay, the outpaint canvas. No model, no Gradio."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.engine import inputs
from studio.engine.binders import Inputs
from studio.errors import InvalidRequest
from studio.requests import GenerationRequest, Task


def px(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def bands(width=80, height=40) -> Image.Image:
    """Left half red, right half blue: where each side lands tells the resize mode."""
    image = Image.new("RGB", (width, height), (255, 0, 0))
    image.paste((0, 0, 255), (width // 2, 0, width, height))
    return image


def test_resize_modes_as_a1111_names_them():
    source = bands(80, 40)                                   # 2:1 into a square
    just = inputs.resize(source, (32, 32), "just_resize")
    crop = inputs.resize(source, (32, 32), "crop_and_resize")
    fill = inputs.resize(source, (32, 32), "resize_and_fill")
    assert just.size == crop.size == fill.size == (32, 32)
    # just resize squeezes: both halves stay, full height
    assert tuple(px(just)[16, 2]) == (255, 0, 0) and tuple(px(just)[16, 29]) == (0, 0, 255)
    # crop and resize covers the square and crops the sides: the middle 40 px of 80 (red | blue)
    assert tuple(px(crop)[0, 2]) == (255, 0, 0) and tuple(px(crop)[31, 29]) == (0, 0, 255)
    # resize and fill fits the whole image (32x16 in the middle) and stretches its edge rows into the bands
    assert np.array_equal(px(fill)[0], px(fill)[8]) and np.array_equal(px(fill)[31], px(fill)[23])
    assert tuple(px(fill)[2, 2]) == (255, 0, 0) and tuple(px(fill)[29, 29]) == (0, 0, 255)
    same = inputs.resize(source, (80, 40), "crop_and_resize")
    assert np.array_equal(px(same), px(source))


def test_size_from_the_image_rounds_to_16_scales_and_refuses_over_the_cap():
    assert inputs.size_for((80, 70)) == (80, 64)
    assert inputs.size_for((64, 64), 1.5) == (96, 96)
    assert inputs.size_for((3, 3)) == (16, 16)
    with pytest.raises(InvalidRequest) as info:
        inputs.size_for((3000, 2000), 2.0)
    assert info.value.field == "init_image" and "6000x4000 is over the 4096 px limit" in str(info.value)


def test_mask_rules_white_redraws_painted_layers_count_their_opaque_part():
    opaque = Image.new("RGBA", (32, 32), (0, 0, 0, 255))
    ImageDraw.Draw(opaque).rectangle((0, 0, 15, 31), fill=(255, 255, 255, 255))
    assert inputs.mask_of(opaque).getextrema() == (0, 255)            # a mask file: its brightness
    assert px(inputs.mask_of(opaque))[0, 20] == 0
    layer = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    ImageDraw.Draw(layer).rectangle((0, 0, 15, 31), fill=(200, 0, 200, 255))   # magenta strokes
    assert px(inputs.mask_of(layer))[0, 5] == 255 and px(inputs.mask_of(layer))[0, 20] == 0
    mask = inputs.mask_of(opaque)
    assert np.array_equal(px(inputs.effective_mask(mask, "not_masked")), 255 - px(mask))
    assert inputs.effective_mask(mask, "masked") is mask


def request(**kw) -> GenerationRequest:
    return GenerationRequest("x", task=Task.INPAINT, init_image="i.png", mask_image="m.png", **kw)


def test_check_images_names_what_is_wrong():
    image, mask = Image.new("RGB", (80, 64)), Image.new("L", (80, 64), 0)
    with pytest.raises(InvalidRequest, match="mask_image: the mask is empty"):
        inputs.check_images(request(), {"init_image": image, "mask_image": mask})
    with pytest.raises(InvalidRequest, match="covers the whole image"):
        inputs.check_images(request(mask_mode="not_masked"), {"init_image": image,
                                                               "mask_image": Image.new("L", (80, 64), 255)})
    with pytest.raises(InvalidRequest, match="mask_image: the mask is 32x32 but the image is 80x64"):
        inputs.check_images(request(), {"init_image": image, "mask_image": Image.new("L", (32, 32), 255)})
    with pytest.raises(InvalidRequest, match="init_image: the image is 1x1 pixels"):
        inputs.check_images(request(), {"init_image": Image.new("RGB", (1, 1))})
    # the same shape at another size is fine (scaled when loaded); the size comes from the image
    assert inputs.check_images(request(scale_by=0.5), {"init_image": image,
                                                       "mask_image": Image.new("L", (40, 32), 255)}) == (48, 32)
    assert inputs.check_images(request(width=64, height=64), {"init_image": image}) is None


def test_only_masked_box_pads_keeps_the_aspect_and_stays_inside():
    mask = Image.new("L", (128, 96), 0)
    mask.paste(255, (100, 10, 110, 20))                      # a 10x10 dab near the right edge
    box = inputs.crop_box(mask, 8, (64, 64))
    x1, y1, x2, y2 = box
    assert (x2 - x1) == (y2 - y1) == 26 and x1 <= 92 and x2 >= 118 and x2 <= 128 and y1 >= 0
    wide = inputs.crop_box(mask, 0, (64, 32))                # a 2:1 working size -> a 2:1 box
    assert (wide[2] - wide[0]) == 2 * (wide[3] - wide[1]) and wide[2] <= 128
    assert inputs.crop_box(Image.new("L", (8, 8), 0), 4, (8, 8)) is None
    whole = inputs.crop_box(mask, 500, (64, 64))             # padding past the image: the image
    assert whole[2] - whole[0] <= 128 and whole[3] - whole[1] <= 96


def test_finish_inpaint_pastes_the_box_and_keeps_every_pixel_outside_the_mask():
    original = Image.new("RGB", (64, 64), (10, 20, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (40, 40, 56, 56))
    images = Inputs(init=original, mask=mask)
    box = inputs.crop_box(mask, 4, (64, 64))
    seen = inputs.cropped(images, box, (64, 64))
    assert seen.init.size == seen.mask.size == (64, 64)
    generated = Image.new("RGB", (64, 64), (250, 250, 250))
    for blur in (0, 4, 16):
        out = px(inputs.finish_inpaint(images, generated, blur, box))
        outside = px(mask) == 0
        assert np.array_equal(out[outside], px(original)[outside])            # never changed outside
        assert blur or tuple(out[48, 48]) == (250, 250, 250)                   # the middle is redrawn
    soft = px(inputs.finish_inpaint(images, generated, 4, box))
    assert 10 < soft[40, 48, 0] < 250                                          # blended just inside the edge


def test_outpaint_canvas_fills_and_masks_exactly_the_new_area():
    image = bands(64, 64)
    canvas, mask = inputs.outpaint_canvas(image, left=32)
    assert canvas.size == mask.size == (96, 64)
    assert np.array_equal(px(canvas)[:, 32:], px(image))                     # the original, untouched
    assert tuple(px(canvas)[10, 0]) == (255, 0, 0)                           # edge colours
    assert (px(mask)[:, :32] == 255).all() and (px(mask)[:, 32:] == 0).all()
    blurred, mask2 = inputs.outpaint_canvas(image, up=16, down=16, right=16, fill="blur")
    assert blurred.size == (80, 96) and np.array_equal(px(blurred)[16:80, :64], px(image))
    assert (px(mask2)[16:80, :64] == 0).all() and (px(mask2)[:16] == 255).all()


@pytest.mark.parametrize("kwargs, field, message", [
    ({}, "outpaint", "at least one side"),
    ({"left": -1}, "left", "within 0..4096"),
    ({"up": 1.5}, "up", "whole number"),
    ({"right": 4096}, "outpaint", "4160x64, over the 4096 px limit"),
    ({"left": 8, "fill": "noise"}, "fill", "one of ['edge', 'blur']"),
])
def test_outpaint_refuses_with_the_field_named(kwargs, field, message):
    with pytest.raises(InvalidRequest) as info:
        inputs.outpaint_canvas(Image.new("RGB", (64, 64)), **kwargs)
    assert info.value.field == field and message in str(info.value)
