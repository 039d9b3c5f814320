"""The LoRA layouts of each architecture, as data: which tensor names a family's LoRA files carry
(diffusers/peft, kohya and BFL/ComfyUI layouts), read by ``studio.loras.detect``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LoraFamily:
    """What the LoRA files of one architecture look like: data for ``studio/loras/detect.py``.

    ``keys``: regular expressions over tensor names, with ``transformer.`` / ``unet.`` /
    ``diffusion_model.`` / ``base_model.model.`` taken off the front; a file is of this family when
    *every* name matches one (diffusers/peft, kohya and BFL/ComfyUI layouts are all listed). Layouts
    shared by two families (FLUX.1 and SD3 name their joint blocks alike; SD1.5 and SDXL share the
    diffusers UNet names) are told apart by the input width of the ``width_key`` layers in the real
    models (``widths``), then by what kohya and ModelSpec wrote (``metadata``: substrings of
    ``ss_base_model_version`` / ``modelspec.architecture``)."""

    name: str
    label: str
    keys: tuple[str, ...]
    width_key: str = ""
    widths: tuple[int, ...] = ()
    metadata: tuple[str, ...] = ()


_BFL_BLOCKS = r"(double_blocks|single_blocks|img_in|txt_in|time_in|vector_in|guidance_in|final_layer)"
_FLUX_ROOT = r"^(x_embedder|context_embedder|time_text_embed|norm_out|proj_out)\b"
_SD_UNET = r"^(down_blocks|up_blocks|mid_block|conv_in|conv_out|conv_norm_out|time_embedding|add_embedding)\b"
_KOHYA_UNET = r"^lora_unet_(down_blocks|up_blocks|mid_block|conv_in|conv_out|time_embedding|add_embedding)_"
_SGM_UNET = r"^(lora_unet_)?(input_blocks|output_blocks|middle_block|label_emb|time_embed|out)[._]"
LORA_FAMILIES: dict[str, LoraFamily] = {f.name: f for f in (
    LoraFamily("flux1", "FLUX.1", (
        _FLUX_ROOT,
        r"^transformer_blocks\.\d+\.(attn\.|ff\.net\.|ff_context\.net\.|norm1\.|norm1_context\.)",
        r"^single_transformer_blocks\.\d+\.(attn\.to_[qkv]\b|attn\.to_out|attn\.norm|proj_mlp|proj_out|norm\.)",
        rf"^lora_unet_{_BFL_BLOCKS}", rf"^{_BFL_BLOCKS}\.", r"^lora_transformer_",
        r"^text_encoder\.", r"^lora_te1?_"),
        width_key=r"(attn[._]to_q|img_attn[._]qkv)\b", widths=(3072,),
        metadata=("flux1", "flux-1", "flux.1", "flux_1")),
    LoraFamily("flux2", "FLUX.2", (
        _FLUX_ROOT,
        r"^transformer_blocks\.\d+\.(attn\.|ff\.linear_|ff_context\.linear_|norm1\.|norm1_context\.)",
        r"^single_transformer_blocks\.\d+\.attn\.",
        rf"^lora_unet_{_BFL_BLOCKS}", rf"^{_BFL_BLOCKS}\.(?!\d+\.processor\.)", r"^lora_transformer_"),
        width_key=r"(attn[._]to_q|img_attn[._]qkv)\b", widths=(6144,), metadata=("flux2", "flux-2", "flux.2")),
    LoraFamily("sd3", "Stable Diffusion 3", (
        r"^(pos_embed|x_embedder|context_embedder|time_text_embed|norm_out|proj_out)\b",
        r"^transformer_blocks\.\d+\.(attn2?\.|ff\.net\.|ff_context\.net\.|norm1\.|norm1_context\.)",
        r"^(lora_unet_)?(joint_blocks|x_embedder|context_embedder|t_embedder|y_embedder|final_layer)[._]",
        r"^lora_transformer_", r"^text_encoder(_2|_3)?\.", r"^lora_te[123]?_"),
        width_key=r"attn[._]to_q\b", widths=(1536, 2432), metadata=("sd3", "stable-diffusion-3")),
    LoraFamily("sdxl", "Stable Diffusion XL", (
        _SD_UNET, _KOHYA_UNET, _SGM_UNET, r"^text_encoder(_2)?\.", r"^lora_te[12]_"),
        width_key=r"attn2[._]to_k\b", widths=(2048,), metadata=("sdxl", "stable-diffusion-xl")),
    LoraFamily("sd15", "Stable Diffusion 1.5", (
        _SD_UNET, _KOHYA_UNET, _SGM_UNET, r"^text_encoder\.", r"^lora_te_"),
        width_key=r"attn2[._]to_k\b", widths=(768,), metadata=("sd_v1", "stable-diffusion-v1", "sd1")),
)}
