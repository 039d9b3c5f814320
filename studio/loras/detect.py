"""Which family a LoRA is for, its layout and rank, from tensor names and shapes (no torch).

The catalog (``studio.loras.families.LORA_FAMILIES``) says, as data, which tensor names each
family's LoRAs have in the diffusers/peft, kohya and BFL/ComfyUI layouts. A file is a candidate of
a family when every one of its names fits that family; the input width of the layers the family
names (``width_key``) narrows shared layouts for real models, and kohya's / ModelSpec's metadata
narrows what is still shared. What the keys cannot tell (a tiny test LoRA in a layout FLUX.1 and
SD3 share) stays a set of candidates: the LoRA may be used with any of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from studio.loras.families import LORA_FAMILIES

PREFIXES = ("base_model.model.", "model.diffusion_model.", "diffusion_model.", "transformer.", "unet.")
DOWN = (".lora_A.weight", ".lora_down.weight", ".lora.down.weight", ".lora_linear_layer.down.weight")
UP = (".lora_B.weight", ".lora_up.weight", ".lora.up.weight", ".lora_linear_layer.up.weight")
LYCORIS = (".hada_w1_a", ".lokr_w1", ".lokr_w1_a", ".oft_blocks", ".hada_w1_b")
IGNORED = ("bundle_emb.", "emb_params")     # textual inversions bundled with a LoRA: not layers


@dataclass(frozen=True, slots=True)
class Detected:
    families: tuple[str, ...]     # candidates, most likely first; () = could not tell
    source: str                   # keys | keys + widths | keys + metadata | metadata | ""
    layout: str                   # diffusers | kohya | bfl | lycoris | unknown
    rank: int | None
    problem: str = ""             # "" when it is a LoRA at all

    @property
    def family(self) -> str | None:
        """The family when the keys (and widths, metadata) name exactly one."""
        return self.families[0] if len(self.families) == 1 else None


def is_down(key: str) -> bool:
    """A LoRA's down (A) matrix: its shape is (rank, input width)."""
    return key.endswith(DOWN) or (key.endswith(".down.weight") and "_lora" in key)     # XLabs: qkv_lora1.down


def strip_prefix(key: str) -> str:
    for prefix in PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def layout_of(keys: list[str]) -> str:
    if any(k.endswith(LYCORIS) or ".hada_" in k or ".lokr_" in k for k in keys):
        return "lycoris"
    if any(k.startswith(("lora_unet_", "lora_te", "lora_transformer_")) for k in keys):
        return "kohya"
    if any(".lora_A." in k or ".lora_B." in k or ".lora.down." in k or ".lora_linear_layer." in k for k in keys):
        return "diffusers"
    if any(".processor." in k and "_lora" in k for k in keys):
        return "xlabs"
    if any(".lora_down." in k or ".lora_up." in k for k in keys):
        return "bfl"
    return "unknown"


def _compiled(family) -> re.Pattern:
    return re.compile("|".join(f"(?:{k})" for k in family.keys))


def _widths(family, shapes: dict[str, list[int]]) -> set[int]:
    """Input widths of the down matrices of the layers ``family.width_key`` names."""
    if not family.width_key:
        return set()
    probe = re.compile(family.width_key)
    return {shape[1] for key, shape in shapes.items()
            if is_down(key) and len(shape) >= 2 and probe.search(key)}


def _meta_text(metadata: dict[str, str]) -> str:
    return " ".join(str(metadata.get(k, "")) for k in ("ss_base_model_version", "modelspec.architecture",
                                                          "sd version")).lower()


def detect(shapes: dict[str, list[int]], metadata: dict[str, str] | None = None) -> Detected:
    """``shapes``: tensor name -> shape (a safetensors header). See the module doc."""
    metadata = metadata or {}
    keys = [k for k in shapes if not k.startswith(IGNORED)]
    layout = layout_of(keys)
    downs = [shape[0] for key, shape in shapes.items() if is_down(key) and shape]
    rank = max(downs) if downs else None
    if not keys or (not downs and layout != "lycoris"):
        return Detected((), "", layout, None, "no LoRA layers in it (no lora_A / lora_down tensors): not a LoRA file")
    stripped = [strip_prefix(k) for k in keys]
    patterns = {f.name: _compiled(f) for f in LORA_FAMILIES.values()}
    candidates = [f for f in LORA_FAMILIES.values() if all(patterns[f.name].match(k) for k in stripped)]
    source = "keys" if candidates else ""
    if len(candidates) > 1:
        confirmed = [f for f in candidates if _widths(f, shapes) & set(f.widths)]
        if confirmed:
            candidates, source = confirmed, "keys + widths"
    meta = _meta_text(metadata)
    if len(candidates) > 1 or not candidates:
        named = [f for f in (candidates or LORA_FAMILIES.values()) if any(m in meta for m in f.metadata)]
        if named:
            source = "keys + metadata" if candidates else "metadata"
            candidates = named
    return Detected(tuple(f.name for f in candidates), source, layout, rank)


def family_label(names: tuple[str, ...] | list[str]) -> str:
    """``("flux1", "sd3")`` -> ``"FLUX.1 or Stable Diffusion 3"``; () -> ``"unknown"``."""
    if not names:
        return "unknown"
    return " or ".join(LORA_FAMILIES[n].label for n in names)
