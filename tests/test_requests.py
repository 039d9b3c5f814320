import pytest

from studio.errors import InvalidRequest
from studio.requests import GenerationRequest, LoraSpec, Task


def field_of(**kwargs) -> str:
    with pytest.raises(InvalidRequest) as info:
        GenerationRequest(prompt="x", **kwargs)
    return info.value.field


@pytest.mark.parametrize("kwargs, field", [
    ({"width": 1000}, "width"),
    ({"height": 72}, "height"),
    ({"steps": 0}, "steps"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_count": 0}, "batch_count"),
    ({"seed": 2**64}, "seed"),
    ({"guidance": -1.0}, "guidance"),
    ({"task": "paint"}, "task"),
    ({"task": Task.IMG2IMG}, "init_image"),
    ({"loras": (LoraSpec("a", 1.0), LoraSpec("a", 0.5))}, "loras"),
])
def test_invalid_requests_name_the_field(kwargs, field):
    assert field_of(**kwargs) == field


def test_size_message_suggests_neighbours():
    with pytest.raises(InvalidRequest, match="multiple of 16, got 1000 \\(try 992 or 1008\\)"):
        GenerationRequest(prompt="x", width=1000)


def test_seed_minus_one_means_random():
    assert GenerationRequest(prompt="x", seed=-1).seed is None


def test_json_round_trip_keeps_everything():
    req = GenerationRequest(prompt='a "cat", on: a mat\nnew line — 猫', negative_prompt="blurry", model_id="m",
                            width=512, height=768, steps=20, guidance=7.5, seed=42, batch_size=2,
                            loras=(LoraSpec("detail", 0.7),), extra=(("clip_skip", 2),))
    back = GenerationRequest.from_json(req.to_json())
    assert back == req


def test_seed_of_follows_a1111_batches():
    req = GenerationRequest(prompt="x", seed=10, batch_size=3, batch_count=2)
    assert [req.seed_of(b, i) for b in range(2) for i in range(3)] == [10, 11, 12, 13, 14, 15]


def test_resolved_fills_only_missing_fields():
    req = GenerationRequest(prompt="x", steps=9).resolved(model_id="m", width=64, height=64, steps=4,
                                                          guidance=0.0, seed=7, scheduler="Euler")
    assert (req.model_id, req.width, req.steps, req.guidance, req.seed) == ("m", 64, 9, 0.0, 7)


@pytest.mark.parametrize("kwargs, field", [
    ({"resize_mode": "stretch"}, "resize_mode"),
    ({"mask_mode": "invert"}, "mask_mode"),
    ({"inpaint_area": "masked"}, "inpaint_area"),
    ({"mask_padding": -1}, "mask_padding"),
    ({"scale_by": 0}, "scale_by"),
    ({"mask_blur": 65}, "mask_blur"),
    ({"task": Task.IMG2IMG, "init_image": "i.png", "strength": 0}, "strength"),
])
def test_img2img_and_inpaint_fields_name_themselves(kwargs, field):
    assert field_of(**kwargs) == field


def test_a_version_2_request_without_the_img2img_fields_still_loads():
    """Requests written before resize_mode, scale_by, mask_mode, inpaint_area and mask_padding."""
    old = {"prompt": "a cat", "task": "inpaint", "init_image": "inputs/a.png", "mask_image": "inputs/b.png",
           "mask_blur": 8, "strength": 0.9, "version": 2}
    req = GenerationRequest.from_dict(old)
    assert (req.resize_mode, req.scale_by, req.mask_mode, req.inpaint_area, req.mask_padding) == \
        ("just_resize", 1.0, "masked", "whole", 32)
    full = req.replace(resize_mode="resize_and_fill", scale_by=1.5, mask_mode="not_masked",
                       inpaint_area="only_masked", mask_padding=48)
    assert GenerationRequest.from_json(full.to_json()) == full
