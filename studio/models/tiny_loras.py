"""Tiny LoRAs for the tiny pipelines (``tiny.py``), built offline, in the layouts found in the wild:

- ``diffusers``: peft layers saved as ``save_lora_weights`` writes them (``unet.`` / ``transformer.`` /
  ``text_encoder.`` / ``text_encoder_2.`` prefixes, ``lora_A`` / ``lora_B``);
- ``kohya``: sd-scripts' names (``lora_unet_...``, ``lora_te_`` / ``lora_te1_`` / ``lora_te2_``,
  ``lora_down`` / ``lora_up`` and ``.alpha``); for FLUX the BFL block names sd-scripts uses
  (``lora_unet_double_blocks_0_img_attn_qkv``...).

Every layer is random (``init_lora_weights=False``: a LoRA must change the image), seeded.
``metadata`` goes into the file's header as kohya / ModelSpec would write it.
"""

from __future__ import annotations

from pathlib import Path

import torch

SD_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
FLUX_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
                "proj_mlp", "proj_out"]
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def _peft(model, rank: int, targets: list[str], seed: int) -> dict[str, torch.Tensor]:
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    model.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False, target_modules=targets),
                      adapter_name="tiny")
    state = get_peft_model_state_dict(model, adapter_name="tiny")
    return {k: v.detach().clone().contiguous() for k, v in state.items()}


def diffusers_state(kind: str, base_folder: str | Path, *, rank: int = 4, seed: int = 0,
                    text_encoder: bool = False) -> dict[str, torch.Tensor]:
    """A peft LoRA for the tiny ``kind`` (sd15 | sdxl | flux) pipeline in ``base_folder``, keys as
    ``save_lora_weights`` writes them. ``text_encoder``: layers on the text encoder(s) too (SDXL: both)."""
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(base_folder))
    out: dict[str, torch.Tensor] = {}
    if kind == "flux":
        out.update({f"transformer.{k}": v for k, v in _peft(pipe.transformer, rank, FLUX_TARGETS, seed).items()})
    else:
        out.update({f"unet.{k}": v for k, v in _peft(pipe.unet, rank, SD_TARGETS, seed).items()})
    if text_encoder:
        out.update({f"text_encoder.{k}": v for k, v in _peft(pipe.text_encoder, rank, TE_TARGETS, seed + 1).items()})
        if kind == "sdxl":
            out.update({f"text_encoder_2.{k}": v
                        for k, v in _peft(pipe.text_encoder_2, rank, TE_TARGETS, seed + 2).items()})
    return out


def kohya_state(kind: str, base_folder: str | Path, *, rank: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """The same kind of LoRA in sd-scripts' layout (SD: with text-encoder layers, as sd-scripts trains)."""
    if kind == "flux":
        return _kohya_flux(Path(base_folder), rank, seed)
    from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya

    state = convert_state_dict_to_kohya(diffusers_state(kind, base_folder, rank=rank, seed=seed, text_encoder=True))
    if kind == "sd15":                          # sd-scripts names SD1.x's one text encoder lora_te_
        state = {k.replace("lora_te1_", "lora_te_"): v for k, v in state.items()}
    return {k: v.contiguous() for k, v in state.items()}


def _kohya_flux(base_folder: Path, rank: int, seed: int) -> dict[str, torch.Tensor]:
    """BFL names for the tiny FLUX transformer: double blocks (attention, MLP) and single blocks'
    output layer. (diffusers' converter hard-codes FLUX.1's single-block widths for ``linear1``.)"""
    import json

    cfg = json.loads((base_folder / "transformer" / "config.json").read_text())
    inner = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    mlp = inner * 4
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}

    def layer(name: str, n_in: int, n_out: int) -> None:
        out[f"lora_unet_{name}.lora_down.weight"] = torch.randn(rank, n_in, generator=gen) * 0.3
        out[f"lora_unet_{name}.lora_up.weight"] = torch.randn(n_out, rank, generator=gen) * 0.3
        out[f"lora_unet_{name}.alpha"] = torch.tensor(float(rank))

    for i in range(cfg["num_layers"]):
        for side in ("img", "txt"):
            layer(f"double_blocks_{i}_{side}_attn_qkv", inner, 3 * inner)
            layer(f"double_blocks_{i}_{side}_attn_proj", inner, inner)
            layer(f"double_blocks_{i}_{side}_mlp_0", inner, mlp)
            layer(f"double_blocks_{i}_{side}_mlp_2", mlp, inner)
    for i in range(cfg["num_single_layers"]):
        layer(f"single_blocks_{i}_linear2", inner + mlp, inner)
    return out


def save_tiny_lora(kind: str, base_folder: str | Path, path: str | Path, *, layout: str = "diffusers",
                   rank: int = 4, seed: int = 0, text_encoder: bool = False, metadata: dict[str, str] | None = None,
                   dtype: torch.dtype = torch.float32) -> Path:
    """Write a tiny LoRA file (see the module doc) and return its path."""
    from safetensors.torch import save_file

    if layout == "diffusers":
        state = diffusers_state(kind, base_folder, rank=rank, seed=seed, text_encoder=text_encoder)
    elif layout == "kohya":
        state = kohya_state(kind, base_folder, rank=rank, seed=seed)
    else:
        raise ValueError(f"layout must be diffusers or kohya, got {layout!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}, str(path),
              metadata=dict(metadata or {}))
    return path
