"""A LoRA mix merged into a model, saved as a new diffusers folder (``models/checkpoints/<name>/``).

The model is leased with the mix set (``set_adapters``); each layer's merged weight, ``W + sum of
weight x scale x B @ A`` (peft's ``get_delta_weight``), is computed beside the live model and
written out, so the cached model is never changed and needs no undo. Components without LoRA
layers are written as they are. The folder appears whole or not at all (written under a hidden
name, then renamed); it loads like any diffusers folder, and the studio lists it by its name.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from studio.models.registry import ModelEntry
from studio.requests import Task


def merged_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state dict with its active LoRA layers merged in and peft's names taken out."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    deltas: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer) and not module.disable_adapters and not module.merged:
            active = [a for a in module.active_adapters if a in getattr(module, "lora_A", {})]
            if active:
                deltas[f"{name}.weight"] = sum(module.get_delta_weight(a) for a in active)
    out = {}
    for key, tensor in model.state_dict().items():
        if ".lora_" in key or "lora_magnitude_vector" in key:
            continue
        clean = key.replace(".base_layer.", ".")
        if clean in deltas:
            tensor = tensor + deltas[clean].to(tensor.dtype)
        out[clean] = tensor.detach().contiguous()
    return out


def _save_component(name: str, component, folder: Path) -> None:
    from diffusers import ModelMixin
    from huggingface_hub import save_torch_state_dict

    target = folder / name
    if isinstance(component, torch.nn.Module):
        target.mkdir(parents=True, exist_ok=True)
        if isinstance(component, ModelMixin):
            component.save_config(target)
            pattern = "diffusion_pytorch_model{suffix}.safetensors"
        else:                                        # transformers: config.json + model.safetensors
            component.config.save_pretrained(target)
            pattern = "model{suffix}.safetensors"
        save_torch_state_dict(merged_state(component), target, filename_pattern=pattern, max_shard_size="10GB",
                              metadata={"format": "pt"})
    elif hasattr(component, "save_pretrained"):      # tokenizers, schedulers, feature extractors
        component.save_pretrained(target)


def merge_loras(manager, entry: ModelEntry, loras: tuple[tuple[str, float], ...], dest: Path,
                studio_json: dict) -> Path:
    """Save ``entry`` with ``loras`` ((path, weight) pairs) merged in, as the folder ``dest``."""
    from studio.models.manager import LeasePlan

    partial = dest.with_name(f".{dest.name}.partial")
    if partial.exists():
        shutil.rmtree(partial)
    try:
        with manager.lease(entry, Task.TXT2IMG, LeasePlan(loras=loras)) as pipe:
            partial.mkdir(parents=True)
            pipe.save_config(partial)                # model_index.json
            for name, component in pipe.components.items():
                if component is not None:
                    _save_component(name, component, partial)
        (partial / "studio.json").write_text(json.dumps(studio_json, indent=1, ensure_ascii=False), encoding="utf-8")
        partial.rename(dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return dest
