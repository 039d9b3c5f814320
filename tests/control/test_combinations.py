"""ControlNet with the rest in one request: an IP-Adapter and a LoRA beside a net (each visibly
takes part; after the lease the plain image is the plain image again), and inpaint through the
``/controlnet`` handler (outside the mask the start image is untouched)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from studio.requests import ControlUnit, GenerationRequest, ImagePrompt, LoraSpec
from tests.control.conftest import px


@pytest.fixture(scope="module")
def extras(cn_models) -> dict[str, str]:
    """A tiny IP-Adapter and a LoRA for tiny-sd15, in the ControlNet tests' models folder."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from studio.models.tiny import save_tiny_ip_adapter

    pipe = StableDiffusionPipeline.from_pretrained(cn_models / "checkpoints" / "tiny-sd15")
    save_tiny_ip_adapter("sd15", cn_models / "ip_adapter" / "sd15-ip", pipe)
    torch.manual_seed(5)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                     target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    StableDiffusionPipeline.save_lora_weights(cn_models / "loras", unet_lora_layers=get_peft_model_state_dict(pipe.unet),
                                              weight_name="sd15-style.safetensors")
    return {"ip": "sd15-ip", "lora": "sd15-style"}


def test_a_net_an_ip_adapter_and_a_lora_in_one_request(cn_studio, extras, shapes):
    unit = ControlUnit("canny", str(shapes["triangle"]), preprocessor="canny")
    prompt = ImagePrompt((str(shapes["circle"]),), adapter=extras["ip"], scale=1.0)
    lora = LoraSpec(extras["lora"], 1.0)

    def draw(**parts):
        return cn_studio.generate(GenerationRequest("a cat", model_id="tiny-sd15", seed=3, steps=2, **parts))

    full = draw(controls=(unit,), image_prompts=(prompt,), loras=(lora,))
    assert np.array_equal(px(full.images[0]), px(draw(controls=(unit,), image_prompts=(prompt,),
                                                      loras=(lora,)).images[0]))
    for without in ({"image_prompts": (prompt,), "loras": (lora,)}, {"controls": (unit,), "loras": (lora,)},
                    {"controls": (unit,), "image_prompts": (prompt,)}):
        assert np.abs(px(draw(**without).images[0]) - px(full.images[0])).mean() > 0.5, sorted(without)
    row = cn_studio.sink.store.get(full.saved[0].image_id)
    assert (len(row.controls), len(row.image_prompts), [x.name for x in row.loras]) == (1, 1, [extras["lora"]])
    plain = draw()
    assert np.array_equal(px(plain.images[0]), px(draw().images[0]))        # nothing left on the shared UNet


@pytest.mark.e2e
def test_inpaint_with_a_net_through_the_handler(cn_server, shapes, tmp_path):
    from gradio_client import Client, handle_file

    url, studio = cn_server
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))                       # redraw the left half only
    mask.save(tmp_path / "mask.png")
    start = Image.new("RGB", (64, 64), (200, 40, 40))
    start.save(tmp_path / "start.png")
    images, seed, infotext, ids, status = Client(url, verbose=False).predict(
        "a cat", handle_file(str(shapes["triangle"])), seed=4, steps=2, init_image=handle_file(str(tmp_path / "start.png")),
        mask_image=handle_file(str(tmp_path / "mask.png")), strength=1.0, api_name="/controlnet")
    got = np.asarray(Image.open(images[0]["image"]).convert("RGB"), dtype=np.int16)
    row = studio.sink.store.get(ids[0])
    assert row.task == "inpaint" and row.controls[0].map.startswith("inputs/")
    # the unit named no net: the row names the one that ran, so re-generate uses it even if the default moves
    assert row.controls[0].model == studio.registry.controlnet("", studio.registry.get(row.model_id), "canny").name != ""
    assert np.abs(got[:, 48:] - np.array([200, 40, 40])).max() <= 2        # beyond the mask's blur: the start image
    assert np.abs(got[:, :16] - np.array([200, 40, 40])).mean() > 10       # inside: redrawn
