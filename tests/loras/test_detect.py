"""A LoRA's family, layout and rank from its tensor names and shapes: real-size layouts (synthetic
headers, no weights) and what only metadata can settle."""

from __future__ import annotations

import pytest

from studio.loras.detect import detect, family_label


def lora(names: list[str], n_in: int = 64, rank: int = 8, style: str = "peft") -> dict[str, list[int]]:
    down, up = {"peft": ("lora_A.weight", "lora_B.weight"), "kohya": ("lora_down.weight", "lora_up.weight")}[style]
    out = {}
    for name in names:
        out[f"{name}.{down}"] = [rank, n_in]
        out[f"{name}.{up}"] = [n_in, rank]
        if style == "kohya":
            out[f"{name}.alpha"] = []
    return out


SDXL_KOHYA = lora(["lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q",
                   "lora_unet_output_blocks_2_1_transformer_blocks_0_attn2_to_k",
                   "lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
                   "lora_te2_text_model_encoder_layers_0_self_attn_q_proj"], style="kohya")
SD15_KOHYA = lora(["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k",
                   "lora_te_text_model_encoder_layers_0_self_attn_q_proj"], style="kohya")
FLUX_PEFT = lora(["transformer.transformer_blocks.0.attn.to_q", "transformer.transformer_blocks.0.ff.net.0.proj",
                  "transformer.single_transformer_blocks.3.proj_mlp"], n_in=3072)
FLUX_KOHYA = lora(["lora_unet_double_blocks_0_img_attn_qkv", "lora_unet_single_blocks_7_linear1"], n_in=3072,
                  style="kohya")
FLUX_XLABS = {"double_blocks.0.processor.qkv_lora1.down.weight": [8, 3072],
              "double_blocks.0.processor.qkv_lora1.up.weight": [9216, 8]}
FLUX2_PEFT = lora(["transformer.single_transformer_blocks.0.attn.to_qkv_mlp_proj",
                   "transformer.transformer_blocks.0.ff.linear_in"], n_in=6144)


@pytest.mark.parametrize("shapes, families, layout", [
    (SDXL_KOHYA, ("sdxl",), "kohya"),
    (SD15_KOHYA, ("sd15",), "kohya"),
    (FLUX_PEFT, ("flux1",), "diffusers"),
    (FLUX_KOHYA, ("flux1",), "kohya"),                       # FLUX.1's 3072 wide blocks settle FLUX.1 vs FLUX.2
    (FLUX2_PEFT, ("flux2",), "diffusers"),
    (FLUX_XLABS, ("flux1",), "xlabs"),
    (lora(["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"], n_in=768), ("sd15",), "diffusers"),
    (lora(["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"], n_in=2048), ("sdxl",), "diffusers"),
    (lora(["transformer.transformer_blocks.0.attn.to_q"], n_in=1536), ("sd3",), "diffusers"),
    (lora(["transformer.transformer_blocks.0.attn.to_q"], n_in=3072), ("flux1",), "diffusers"),
    (lora(["text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj",
           "unet.up_blocks.0.attentions.0.proj_in"]), ("sdxl",), "diffusers"),
])
def test_family_and_layout_from_the_keys(shapes, families, layout):
    found = detect(shapes)
    assert (found.families, found.layout, found.rank, found.problem) == (families, layout, 8, "")
    assert found.source.startswith("keys")


def test_a_shared_layout_stays_open_until_widths_or_metadata_settle_it():
    tiny_unet = lora(["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"], n_in=32)
    assert detect(tiny_unet).families == ("sdxl", "sd15")         # a tiny UNet: either
    assert family_label(detect(tiny_unet).families) == "Stable Diffusion XL or Stable Diffusion 1.5"
    said = detect(tiny_unet, {"ss_base_model_version": "sd_v1"})
    assert (said.families, said.source) == (("sd15",), "keys + metadata")
    spec = detect(tiny_unet, {"modelspec.architecture": "stable-diffusion-xl-v1-base/lora"})
    assert spec.family == "sdxl"
    # the keys decide: metadata naming a family the keys rule out is not believed
    assert detect(SDXL_KOHYA, {"ss_base_model_version": "sd_v1"}).families == ("sdxl",)


def test_not_a_lora_and_unknown_layouts():
    checkpoint = {"model.diffusion_model.input_blocks.0.0.weight": [320, 4, 3, 3]}
    found = detect(checkpoint)
    assert found.families == () and "not a LoRA" in found.problem
    odd = lora(["some_new_arch.blocks.0.attn"])
    assert detect(odd).families == () and detect(odd).problem == ""
    assert detect(odd, {"modelspec.architecture": "flux-1-dev/lora"}).families == ("flux1",)
    assert detect(odd, {"modelspec.architecture": "flux-1-dev/lora"}).source == "metadata"
