"""SwarmUI: a JSON object in the ``parameters`` chunk (JPEG: EXIF UserComment), as its
"Image Metadata Format" documents it::

    {"sui_image_params": {"prompt": ..., "negativeprompt": ..., "model": "OfficialStableDiffusion/sd_xl_base_1.0",
                          "seed": 1, "steps": 20, "cfgscale": 7.0, "width": 1024, "height": 1024,
                          "sampler": "euler", "scheduler": "karras", "loras": ["Lora/x", ...] or "a,b",
                          "loraweights": ["0.8", ...] or "0.8,1", "swarm_version": "0.9.3.1", ...},
     "sui_extra_data": {...},
     "sui_models": [{"name": "OfficialStableDiffusion/sd_xl_base_1.0.safetensors", "param": "model",
                     "hash": "0x<sha256 of the tensors after the header>"}]}

Values may be numbers or their text; lists may be JSON lists or comma-separated text.
"""

from __future__ import annotations

from typing import Any

from studio.gallery.readers import Reading, Size, Unreadable
from studio.gallery.readers.values import (json_value, kind_of, lora, put, read_fields, real, sampler, stem, text,
                                           unique_loras, whole)

SOURCE = "SwarmUI"


def _items(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [x.strip() for x in value.split(",") if x.strip()]
    return []


def read(chunks: dict[str, str], size: Size) -> Reading | None:
    raw = chunks.get("parameters") or ""
    if "sui_image_params" not in raw:
        return None
    data = json_value(raw)
    if not isinstance(data, dict) or "sui_image_params" not in data:
        return None
    params = data["sui_image_params"]
    if not isinstance(params, dict):
        raise Unreadable(f"SwarmUI 'sui_image_params' is {kind_of(params)}, not an object of parameters")
    notes: list[str] = []
    fields: dict[str, Any] = {}
    read_fields(fields, notes, SOURCE, params, (("prompt", "prompt", text), ("negative_prompt", "negativeprompt", text),
                                                ("seed", "seed", whole), ("steps", "steps", whole),
                                                ("guidance", "cfgscale", real), ("width", "width", whole),
                                                ("height", "height", whole)))
    model = stem(params.get("model"))
    if model:
        fields["model_id"] = model
    put(fields, "scheduler", sampler(params.get("sampler"), params.get("scheduler")))
    names, weights = _items(params.get("loras")), _items(params.get("loraweights"))
    loras = [spec for i, name in enumerate(names)
             if (spec := lora(name, weights[i] if i < len(weights) else 1.0, notes, SOURCE)) is not None]
    if loras:
        fields["loras"] = unique_loras(loras)
    model_hash, lora_hashes = "", {}
    models = data.get("sui_models")
    for item in models if isinstance(models, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("hash"), str):
            continue
        if item.get("param") == "model":
            model_hash = item["hash"]
        elif stem(item.get("name")) in {x.name for x in loras}:
            lora_hashes[stem(item.get("name"))] = item["hash"]
    return Reading("swarmui", fields, data, raw, model_hash, tuple(lora_hashes.items()), tuple(notes))
