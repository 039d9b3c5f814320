"""IP-Adapter with a ControlNet, LoRAs and img2img/inpaint in one request (the references stored
with the row, the infotext read back equal); the base pixels again after it; A1111's IP-Adapter
units read; "send to" from the gallery and PNG Info; the catalog and local adapters' families."""

from __future__ import annotations

import numpy as np
import pytest

from studio.errors import ModelUnavailable
from studio.gallery.infotext import fields_from_infotext, format_infotext, request_from_infotext
from studio.requests import ControlUnit, GenerationRequest, ImagePrompt, LoraSpec, Task
from tests.ip.conftest import px


def test_flux_ip_adapter_with_a_controlnet_and_a_lora_in_one_request(ip_studio, refs):
    def req(**kw):
        return GenerationRequest("a cat", model_id="tiny-flux", seed=4, steps=2, **kw)

    plain = px(ip_studio.generate(req()).images[0])
    full = dict(image_prompts=(ImagePrompt((str(refs["red"]),), adapter="flux-ip", scale=1.0),),
                controls=(ControlUnit("canny", str(refs["green"]), model="flux-union", scale=0.8,
                                          preprocessor="canny"),),
                loras=(LoraSpec("flux-style", 0.8),), true_cfg_scale=4.0)
    result = ip_studio.generate(req(**full))
    assert not np.array_equal(px(result.images[0]), plain)
    row = ip_studio.sink.store.get(result.saved[0].image_id)
    assert row.image_prompts[0].images[0].startswith("inputs/") and row.controls[0].map.startswith("inputs/")
    assert [x.name for x in row.loras] == ["flux-style"]
    assert (ip_studio.sink.outputs_dir / row.image_prompts[0].images[0]).is_file()
    assert request_from_infotext(result.saved[0].infotext).image_prompts == result.request.image_prompts
    assert np.array_equal(px(ip_studio.generate(req()).images[0]), plain)      # reset: the base pixels again


def test_sd15_ip_adapters_with_inpaint_and_a_lora(ip_studio, refs, tmp_path):
    from PIL import Image

    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (8, 8, 56, 56))
    mask.save(tmp_path / "mask.png")
    base = GenerationRequest("a cat", model_id="tiny-sd15", seed=4, steps=2, task=Task.INPAINT,
                             init_image=str(refs["blue"]), mask_image=str(tmp_path / "mask.png"), strength=0.9,
                             loras=(LoraSpec("sd15-style", 0.7),))
    plain = px(ip_studio.generate(base).images[0])
    both = base.replace(image_prompts=(ImagePrompt((str(refs["red"]), str(refs["green"])), adapter="sd15-ip",
                                                   scale=1.0, blocks="style_layout"),
                                       ImagePrompt((str(refs["green"]),), adapter="sd15-ip-b", scale=0.5)))
    result = ip_studio.generate(both)
    assert not np.array_equal(px(result.images[0]), plain)
    row = ip_studio.sink.store.get(result.saved[0].image_id)
    assert [(len(p.images), p.adapter, p.blocks) for p in row.image_prompts] == \
        [(2, "sd15-ip", "style_layout"), (1, "sd15-ip-b", "all")]
    assert np.array_equal(px(ip_studio.generate(base).images[0]), plain)


def test_infotext_writes_and_reads_back_blocks_and_true_cfg():
    req = GenerationRequest("a cat", model_id="demo", width=64, height=64, steps=8, guidance=0.0, seed=3,
                            scheduler="Euler", true_cfg_scale=4.0,
                            image_prompts=(ImagePrompt(("inputs/a.png", "inputs/b.png"), adapter="x", scale=0.8,
                                                       blocks="style"),))
    text = format_infotext(req, 3)
    assert 'IP-Adapter: "Adapter: x, Images: inputs/a.png | inputs/b.png, Weight: 0.8, Blocks: style"' in text
    assert "True CFG scale: 4" in text
    assert request_from_infotext(text) == req
    assert GenerationRequest.from_json(req.to_json()) == req            # the gallery row's request, too


def test_a1111_ip_adapter_units_are_read_as_image_prompts():
    """sd-webui-controlnet writes an IP-Adapter as a ControlNet unit whose module is ip-adapter_*."""
    text = ("a portrait\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512, "
            'ControlNet 0: "Module: ip-adapter_clip_sd15, Model: ip-adapter-plus-face_sd15 [71693645], Weight: 0.7, '
            'Resize Mode: Crop and Resize, Guidance Start: 0.0, Guidance End: 1.0, Image: face.png", '
            'ControlNet 1: "Module: ip-adapter_clip_h, Model: ip-adapter_sd15 [6a3f6166], Weight: 1.0", '
            'ControlNet 2: "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1, Image: c.png"')
    notes: list[str] = []
    fields = fields_from_infotext(text, notes)
    (prompt,) = fields["image_prompts"]
    assert (prompt.images, prompt.adapter, prompt.scale) == (("face.png",), "ip-adapter-plus-face_sd15", 0.7)
    assert [u.type for u in fields["controls"]] == ["canny"]
    assert notes == ["ControlNet 1 is an IP-Adapter (ip-adapter_sd15, weight 1.0) whose reference image is not in "
                     "the text: give it again in the IP-Adapter tab"]


def test_send_to_ip_adapter_puts_the_picture_in_the_references(ip_studio, ip_models, refs):
    import gradio as gr

    from studio.config import Settings
    from studio.ui.app import build_app

    demo = build_app(ip_studio, Settings(models_dir=ip_models, offline=True, device="cpu"))
    ctx = demo.studio_context
    values = ctx.send_to({"prompt": "a dog", "model_id": "tiny-sd15", "width": 512}, "ip_adapter",
                         image=str(refs["red"]))
    outputs = ctx.send_to_outputs("ip_adapter")
    assert isinstance(values[0], gr.Tabs) and len(values) == len(outputs)
    assert values[1] == [str(refs["red"])] and values[outputs.index(ctx.forms["ip_adapter"].form.base.prompt)] == \
        "a dog"


def test_catalog_adapters_per_family_and_their_encoders(ip_studio):
    from studio.models.ip_adapters import CLIP_L, IP_ADAPTERS, VIT_BIGG, VIT_H

    assert [a.weight.rsplit("/", 1)[-1] for a in IP_ADAPTERS["sd15"]] == \
        ["ip-adapter_sd15.safetensors", "ip-adapter-plus_sd15.safetensors", "ip-adapter-plus-face_sd15.safetensors"]
    assert {a.weight: a.encoder for a in IP_ADAPTERS["sdxl"]} == {
        "sdxl_models/ip-adapter_sdxl_vit-h.safetensors": VIT_H,
        "sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors": VIT_H,
        "sdxl_models/ip-adapter_sdxl.safetensors": VIT_BIGG}
    assert {a.repo for a in IP_ADAPTERS["flux1"]} == {"XLabs-AI/flux-ip-adapter", "XLabs-AI/flux-ip-adapter-v2"}
    assert all(a.encoder == CLIP_L for a in IP_ADAPTERS["flux1"])
    d = ip_studio.ip_adapter_defaults("tiny-sd15")
    names = [name for _, name in d["adapters"]]
    assert names[:3] == ["sd15-ip", "sd15-ip-b", "sd15-noenc"] and "flux-ip" not in names and "sdxl-ip" not in names
    assert names[3:] == [a.name for a in IP_ADAPTERS["sd15"]]
    assert d["default"] == "sd15-ip" and d["blocks"] and d["true_cfg_scale"] is None   # local first: works offline
    flux = ip_studio.ip_adapter_defaults("tiny-flux")
    assert (flux["max_adapters"], flux["blocks"], flux["true_cfg_scale"]) == (1, False, 4.0)
    # offline and not in the cache: named, with what to run
    entry = ip_studio.registry.get("tiny-sd15")
    with pytest.raises(ModelUnavailable, match=r"hf download h94/IP-Adapter models/ip-adapter_sd15.safetensors"):
        ip_studio.registry.ip_adapter("ip-adapter_sd15", entry)


def test_the_family_of_real_adapters_from_their_keys():
    from studio.models.ip_adapters import arch_from_keys

    def sd(cross: int, n: int, plus: bool = False) -> dict:
        keys = {f"ip_adapter.{2 * i + 1}.to_k_ip.weight": [320, cross] for i in range(n)}
        return keys | ({"image_proj.latents": [1, 16, 1280]} if plus else {"image_proj.proj.weight": [3072, 1024]})

    assert arch_from_keys(sd(768, 16)) == ("sd15", 768)
    assert arch_from_keys(sd(768, 16, plus=True)) == ("sd15", 768)
    assert arch_from_keys(sd(2048, 70)) == ("sdxl", 2048)
    xlabs = {"double_blocks.0.processor.ip_adapter_double_stream_k_proj.weight": [3072, 4096],
             "ip_adapter_proj_model.proj.weight": [16384, 768]}
    assert arch_from_keys(xlabs) == ("flux1", 4096)
    assert arch_from_keys({"lora_unet_down.weight": [4, 4]}) == (None, None)


def test_the_image_encoder_is_loaded_in_the_studios_dtype_and_hub_parts_keep_their_names(ip_models, tmp_path):
    """float32 on CPU (what diffusers' image_encoder_dtype would have to be told; the studio loads the
    encoder itself, shared between adapters that name it); hub sources are cached by their name."""
    import torch

    from studio.models.loader import Loader
    from studio.models.tiers import component_key

    loader = Loader(dtype=torch.float32, device="cpu", offline=True, builtin_dir=tmp_path)
    encoder = loader.load_component("image_encoder", ip_models / "ip_adapter" / "flux-ip" / "image_encoder")
    assert encoder.dtype == torch.float32
    assert component_key("image_encoder", "hub:h94/IP-Adapter/models/image_encoder") == \
        "image_encoder:hub:h94/IP-Adapter/models/image_encoder"
    with pytest.raises(ModelUnavailable, match="hf download XLabs-AI/flux-ip-adapter-v2"):
        loader.load_component("ip_adapter", "hub:XLabs-AI/flux-ip-adapter-v2/ip_adapter.safetensors")
