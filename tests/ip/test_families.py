"""Every family's tiny IP-Adapter loads and runs through the /ip_adapter handler (SD1.5 and SDXL in
h94's layout, FLUX in XLabs'); SD takes several references per adapter and several adapters at
once, and per-block presets; FLUX runs with true CFG by default. The reference shows in the pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e


def run(client, ref, **params):
    from gradio_client import handle_file

    for key in ("images", "adapter_images", "control_images"):
        if key in params:
            params[key] = [handle_file(str(p)) for p in params[key]]
    images, seed, infotext, ids, status = client.predict("a cat", handle_file(str(ref)), seed=3, steps=2,
                                                         api_name="/ip_adapter", **params)
    return np.asarray(Image.open(images[0]["image"]).convert("RGB"), dtype=np.int16), infotext, ids


@pytest.mark.parametrize("model, adapter", [("tiny-flux", "flux-ip"), ("tiny-sdxl", "sdxl-ip"),
                                            ("tiny-sd15", "sd15-ip")])
def test_each_family_loads_and_runs_its_adapter_through_the_handler(ip_client, ip_server, refs, model, adapter):
    red, infotext, ids = run(ip_client, refs["red"], model=model, adapter=adapter, scale=1.0)
    green, _, _ = run(ip_client, refs["green"], model=model, adapter=adapter, scale=1.0)
    assert np.abs(red - green).mean() > 1                      # the reference shows in the pixels
    row = ip_server[1].sink.store.get(ids[0])
    (prompt,) = row.image_prompts
    assert (prompt.adapter, prompt.scale) == (adapter, 1.0) and prompt.images[0].startswith("inputs/")
    assert f"IP-Adapter: \"Adapter: {adapter}, Images: {prompt.images[0]}, Weight: 1\"" in infotext
    assert ("True CFG scale: 4" in infotext) == (model == "tiny-flux")      # XLabs' recipe, FLUX only


def test_flux_true_cfg_is_the_default_and_can_be_turned_off(ip_client, refs):
    default, info, _ = run(ip_client, refs["red"], model="tiny-flux", adapter="flux-ip")
    off, info_off, _ = run(ip_client, refs["red"], model="tiny-flux", adapter="flux-ip", true_cfg_scale=1)
    assert "True CFG scale: 4" in info and "True CFG scale: 1" in info_off
    assert not np.array_equal(default, off)


def test_sd_takes_several_references_per_adapter_and_several_adapters(ip_client, ip_server, refs):
    one, _, _ = run(ip_client, refs["red"], model="tiny-sd15", adapter="sd15-ip", scale=1.0)
    two, _, ids = run(ip_client, refs["red"], model="tiny-sd15", adapter="sd15-ip", scale=1.0, images=[refs["green"]])
    assert not np.array_equal(one, two)
    assert len(ip_server[1].sink.store.get(ids[0]).image_prompts[0].images) == 2
    both, infotext, ids = run(ip_client, refs["red"], model="tiny-sd15", adapter="sd15-ip", scale=1.0,
                              adapters=json.dumps([{"adapter": "sd15-ip-b", "scale": 0.8}]),
                              adapter_images=[refs["green"]])
    assert not np.array_equal(both, one)
    assert [(p.adapter, p.scale) for p in ip_server[1].sink.store.get(ids[0]).image_prompts] == \
        [("sd15-ip", 1.0), ("sd15-ip-b", 0.8)]
    assert 'IP-Adapter 1: "Adapter: sd15-ip-b' in infotext


@pytest.mark.parametrize("model, adapter", [("tiny-sdxl", "sdxl-ip"), ("tiny-sd15", "sd15-ip")])
def test_block_presets_put_the_scale_on_some_layers(ip_client, refs, model, adapter):
    plain, _, _ = run(ip_client, refs["red"], model=model, adapter=adapter, scale=0.0)
    every, _, _ = run(ip_client, refs["red"], model=model, adapter=adapter, scale=1.0)
    style, info, _ = run(ip_client, refs["red"], model=model, adapter=adapter, scale=1.0, blocks="style")
    layout, _, _ = run(ip_client, refs["red"], model=model, adapter=adapter, scale=1.0, blocks="Layout only")
    assert "Blocks: style" in info
    for image in (style, layout):
        assert not np.array_equal(image, plain) and not np.array_equal(image, every)
    assert not np.array_equal(style, layout)


def test_block_scales_follow_instantstyle_on_real_unet_shapes():
    """SDXL: style = up block 0 transformer 1, layout = down block 2 transformer 1 (diffusers' docs);
    SD1.5: the same places, up block 1 and down block 2 (its up block 0 has no attentions)."""
    from types import SimpleNamespace

    from studio.models.adapters import block_scales

    def unet(down: list[bool], up: list[bool], layers: int):
        block = lambda attn: SimpleNamespace(attentions=[]) if attn else SimpleNamespace()  # noqa: E731
        return SimpleNamespace(down_blocks=[block(a) for a in down], up_blocks=[block(a) for a in up],
                               config=SimpleNamespace(layers_per_block=layers))

    sdxl = unet([False, True, True], [True, True, False], 2)
    sd15 = unet([True, True, True, False], [False, True, True, True], 2)
    assert block_scales(sdxl, 0.8, "style") == {"up": {"block_0": [0.0, 0.8, 0.0]}}
    assert block_scales(sdxl, 0.8, "style_layout") == {"up": {"block_0": [0.0, 0.8, 0.0]},
                                                       "down": {"block_2": [0.0, 0.8]}}
    assert block_scales(sd15, 1.0, "layout") == {"down": {"block_2": [0.0, 1.0]}}
    assert block_scales(sd15, 1.0, "style") == {"up": {"block_1": [0.0, 1.0, 0.0]}}
    assert block_scales(sd15, 0.5, "all") == 0.5
