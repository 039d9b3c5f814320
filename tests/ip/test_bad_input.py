"""Bad IP-Adapter input is one clear error naming the field, and nothing is written (no image, no
row, no stored input): no reference, an adapter of another family, several adapters on FLUX, a
missing image encoder, a reference that isn't an image, a scale out of range, and the rest."""

from __future__ import annotations

import json

import pytest

from studio import forms_ip
from studio.errors import InvalidRequest
from tests.ip.conftest import written

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("params, message", [
    ({"image": None}, "image: the reference image is required"),
    ({"model": "tiny-sd15", "adapter": "flux-ip"},
     "image_prompts: IP-Adapter 'flux-ip' is a FLUX.1 adapter; tiny-sd15"),
    ({"model": "tiny-sd15", "adapter": "sdxl-ip"},
     "image_prompts: IP-Adapter 'sdxl-ip' takes image tokens 64 wide; tiny-sd15"),
    ({"model": "tiny-flux", "adapter": "sd15-ip"}, "IP-Adapter 'sd15-ip' takes image tokens 32 wide"),
    ({"adapters": json.dumps([{"adapter": "flux-ip"}]), "adapter_images": ["green"]},
     "image_prompts: FLUX.1 takes 1 IP-Adapter at a time, got 2"),
    ({"images": ["green"]}, "FLUX.1 adapters take at most 1 reference image(s), got 2"),
    ({"blocks": "style"}, "FLUX.1 adapters take one scale for every layer; blocks 'style' is for SD/SDXL"),
    ({"model": "tiny-sd15", "adapter": "sd15-noenc"}, "sd15-noenc has no image_encoder/"),
    ({"model": "tiny-sd15", "adapter": "sd15-ip", "images": ["text"]}, "image_prompts: "),
    ({"scale": 3}, "image_prompts: IP-Adapter 1 scale must be within 0..2, got 3"),
    ({"scale": -0.5}, "image_prompts: IP-Adapter 1 scale must be within 0..2, got -0.5"),
    ({"blocks": "middle"}, "blocks: must be one of all, style, layout, style_layout, got 'middle'"),
    ({"adapter": "nowhere"}, "IP-Adapter 'nowhere' not found in"),
    ({"true_cfg_scale": 50}, "true_cfg_scale: must be a number within 1..20"),
    ({"model": "tiny-sd15", "adapter": "sd15-ip", "true_cfg_scale": 4},
     "true_cfg_scale: Stable Diffusion 1.5 has no true CFG"),
    ({"model": "tiny-sd15", "adapter": "sd15-ip", "adapters": json.dumps([{"adapter": "sd15-ip", "weight": 1}]),
      "adapter_images": ["green"]}, "adapters: adapter 2: unknown field(s) ['weight']"),
    ({"adapters": json.dumps([{}]), "adapter_images": []}, "adapters: 1 adapter(s) but 0 adapter image(s)"),
])
def test_bad_input_is_one_clear_error_and_nothing_is_written(ip_client, ip_server, refs, params, message):
    from gradio_client import handle_file

    studio = ip_server[1]
    before = written(studio)
    params = dict(params)
    image = params.pop("image", refs["red"])
    for key in ("images", "adapter_images"):
        if key in params:
            params[key] = [handle_file(str(refs[name])) for name in params[key]]
    with pytest.raises(Exception) as info:
        ip_client.predict("a cat", handle_file(str(image)) if image else None, seed=1, steps=2,
                          api_name="/ip_adapter", **params)
    assert message in str(info.value), str(info.value)
    assert "bug in the studio" not in str(info.value)
    assert written(studio) == before


def test_a_reference_that_is_not_an_image_is_named(ip_studio, refs):
    from studio.requests import GenerationRequest, ImagePrompt

    before = written(ip_studio)
    req = GenerationRequest("a cat", model_id="tiny-sd15", steps=2, seed=1,
                            image_prompts=(ImagePrompt((str(refs["text"]),), adapter="sd15-ip"),))
    with pytest.raises(InvalidRequest, match=r"image_prompts: .*(not an image|cannot be read|cannot identify)"):
        ip_studio.generate(req)
    assert written(ip_studio) == before


def test_the_form_names_what_is_missing():
    with pytest.raises(InvalidRequest, match="image_prompts: IP-Adapter 2 has no reference image"):
        forms_ip.image_prompt(1, images=[])
    assert forms_ip.image_prompt(0, images=[("a.png", None), {"image": {"path": "b.png"}}],
                                 blocks="Style only").images == ("a.png", "b.png")
    assert forms_ip.true_cfg("", 4.0) == 4.0 and forms_ip.true_cfg(None, None) is None
    assert forms_ip.true_cfg("1", 4.0) == 1.0
