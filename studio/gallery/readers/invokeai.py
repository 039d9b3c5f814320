"""InvokeAI 3+: the ``invokeai_metadata`` chunk, the JSON of its ``core_metadata`` node
(``invokeai/app/invocations/metadata.py``): ``positive_prompt``, ``negative_prompt``, ``width``,
``height``, ``seed``, ``cfg_scale``, ``steps``, ``scheduler`` (``euler``, ``dpmpp_2m_k``...),
``generation_mode`` (``txt2img``, ``sdxl_img2img``, ``flux_txt2img``...), ``model`` and
``loras``. Models are named two ways:

* 3.x: ``{"model_name": "juggernautXL", "base_model": "sdxl", "model_type": "main"}``, LoRAs
  ``[{"lora": {"model_name": ...}, "weight": 0.75}]``;
* 4.x and 5.x: ``{"key": ..., "hash": "blake3:...", "name": ..., "base": "sdxl", "type": "main"}``,
  LoRAs ``[{"model": {...}, "weight": 0.75}]``.

FLUX images carry ``guidance`` (FLUX's distilled guidance) beside ``cfg_scale``.
"""

from __future__ import annotations

from typing import Any

from studio.gallery.readers import Reading, Size, Unreadable
from studio.gallery.readers.values import (bad_shape, json_value, kind_of, lora, put, read_fields, real, sampler, stem,
                                           text, unique_loras, whole)

SOURCE = "InvokeAI"


def _model(value: Any) -> tuple[str, str]:
    """(name, hash) of a model identifier of either generation."""
    if not isinstance(value, dict):
        return "", ""
    name = value.get("name") or value.get("model_name") or ""
    digest = value.get("hash") if isinstance(value.get("hash"), str) else ""
    return (name if isinstance(name, str) else ""), digest


def read(chunks: dict[str, str], size: Size) -> Reading | None:
    raw = chunks.get("invokeai_metadata")
    if raw is None:
        return None
    data = json_value(raw)
    if not isinstance(data, dict):
        raise Unreadable(f"InvokeAI 'invokeai_metadata' is {kind_of(data) if data is not None else 'not JSON'}, "
                         "not an object")
    notes: list[str] = []
    fields: dict[str, Any] = {}
    flux = "guidance" in data or str(data.get("generation_mode", "")).startswith("flux")
    read_fields(fields, notes, SOURCE, data, (("prompt", "positive_prompt", text),
                                              ("negative_prompt", "negative_prompt", text),
                                              ("seed", "seed", whole), ("steps", "steps", whole),
                                              ("guidance", "guidance" if flux else "cfg_scale", real),
                                              ("width", "width", whole), ("height", "height", whole)))
    name, model_hash = _model(data.get("model"))
    if name:
        fields["model_id"] = stem(name)
    elif "model" in data:
        bad_shape(notes, SOURCE, "model", data["model"], "a model identifier")
    put(fields, "scheduler", sampler(data.get("scheduler")))
    mode = str(data.get("generation_mode") or "")
    if mode and not mode.endswith("txt2img"):
        notes.append(f"InvokeAI {mode}: its input image ({data.get('init_image') or 'not named'}) is not in the file; "
                     "read as txt2img")
    loras, lora_hashes = [], {}
    items = data.get("loras") or []
    if not isinstance(items, list):
        bad_shape(notes, SOURCE, "loras", items, "a list")
        items = []
    for item in items:
        if not isinstance(item, dict):
            bad_shape(notes, SOURCE, "loras", item, "{model, weight}")
            continue
        lora_name, digest = _model(item.get("model") or item.get("lora"))
        spec = lora(lora_name, item.get("weight"), notes, SOURCE)
        if spec is not None:
            loras.append(spec)
            if digest:
                lora_hashes[spec.name] = digest
    if loras:
        fields["loras"] = unique_loras(loras)
    return Reading("invokeai", fields, data, raw, model_hash, tuple(lora_hashes.items()), tuple(notes))
