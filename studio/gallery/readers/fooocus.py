"""Fooocus: the ``parameters`` chunk (JPEG/WebP: EXIF UserComment) in one of its schemes, named by the
``fooocus_scheme`` chunk (JPEG/WebP: EXIF MakerNote), as ``modules/meta_parser.py`` writes them:

* ``fooocus`` (2.2+): a JSON object with lower-case keys: ``prompt``, ``negative_prompt``,
  ``prompt_expansion``, ``styles`` (``"['Fooocus V2', ...]"``), ``performance``, ``steps``,
  ``resolution`` (``"(1024, 1024)"``), ``guidance_scale``, ``sharpness``, ``base_model`` and
  ``base_model_hash`` (sha256 of the file, first 10 hex), ``refiner_model``, ``sampler``,
  ``scheduler``, ``seed`` (text, up to 2^63-1), ``lora_combined_N`` (``"name : weight"``),
  ``loras`` (2.5: ``[[name, weight, hash], ...]``; before: ``[[name, weight], ...]``),
  ``full_prompt`` / ``full_negative_prompt`` (after styles and expansion), ``version``...
* ``a1111``: A1111 text, with Fooocus's own keys (``Raw prompt``, ``Lora weights``,
  ``Lora hashes``: ``name: hash``, ``Performance``, ``Styles``...).
* legacy (2.1, no scheme chunk): the JSON of its log's "Copy to Clipboard", capitalised labels
  (``Prompt``, ``Negative Prompt``, ``Resolution``, ``Base Model``, ``Seed``, ``LoRA 1``:
  ``"name : weight"``...) and no steps: they follow from ``Performance``.

The prompt is the user's own (``prompt``); styles, the Fooocus V2 expansion and the full prompts
stay in the parameters.
"""

from __future__ import annotations

import re
from typing import Any

from studio.gallery.infotext import fields_from_infotext, parse_infotext
from studio.gallery.readers import Reading, Size, Unreadable
from studio.gallery.readers.a1111 import hashes_of
from studio.gallery.readers.values import (bad_shape, json_value, kind_of, lora, put, real, sampler, size_pair, stem,
                                           text, unique_loras, whole)

SOURCE = "Fooocus"
PERFORMANCE_STEPS = {"quality": 60, "speed": 30, "extreme speed": 8, "lightning": 4, "hyper-sd": 4}
# keys only Fooocus writes (a bare "prompt" could be anyone's)
CURRENT_KEYS = {"resolution", "base_model", "performance", "metadata_scheme", "full_prompt", "prompt_expansion",
                "sharpness", "adm_guidance"}
LEGACY_KEYS = {"Prompt", "Resolution", "Base Model", "Performance", "Fooocus V2 Expansion"}
RE_LORA_KEY = re.compile(r"(?:lora_combined_|LoRA )(\d+)$")


def read(chunks: dict[str, str], size: Size) -> Reading | None:
    scheme = (chunks.get("fooocus_scheme") or "").strip().lower()
    raw = chunks.get("parameters") or ""
    if scheme == "a1111":
        return _a1111_scheme(raw) if raw.strip() else None
    data = json_value(raw) if raw.lstrip()[:1] == "{" else None
    if not isinstance(data, dict):
        if scheme == "fooocus":
            shown = kind_of(data) if data is not None else "not JSON"
            raise Unreadable(f"Fooocus metadata (scheme 'fooocus') whose 'parameters' is {shown}, not a JSON object")
        return None
    if scheme == "fooocus" or (CURRENT_KEYS & set(data) and "sui_image_params" not in data):
        return _current(data, raw)
    if LEGACY_KEYS & set(data):
        return _legacy(data, raw)
    return None


def _common(data: dict[str, Any], keys: dict[str, str], notes: list[str]) -> dict[str, Any]:
    """The fields both JSON schemes share, by each scheme's key names."""
    fields: dict[str, Any] = {}
    for name, key in (("prompt", "prompt"), ("negative_prompt", "negative_prompt")):
        value = data.get(keys[key])
        if value is not None and text(value) is None:
            bad_shape(notes, SOURCE, keys[key], value, "text")
        put(fields, name, text(value))
    if keys["resolution"] in data:
        pair = size_pair(data[keys["resolution"]])
        if pair is None:
            bad_shape(notes, SOURCE, keys["resolution"], data[keys["resolution"]], "(width, height)")
        else:
            fields["width"], fields["height"] = pair
    for name, key, conv in (("seed", "seed", whole), ("guidance", "guidance_scale", real)):
        if keys[key] in data:
            value = conv(data[keys[key]])
            if value is None:
                bad_shape(notes, SOURCE, keys[key], data[keys[key]], "a number")
            put(fields, name, value)
    model = stem(data.get(keys["base_model"]))
    if model and model != "None":
        fields["model_id"] = model
    put(fields, "scheduler", sampler(data.get(keys["sampler"]), data.get(keys["scheduler"])))
    refiner = stem(data.get(keys["refiner_model"]))
    if refiner and refiner != "None":
        notes.append(f"Fooocus refiner {refiner!r} (switch at {data.get(keys['refiner_switch'])}) is not used by "
                     "this studio")
    return fields


CURRENT = {"prompt": "prompt", "negative_prompt": "negative_prompt", "resolution": "resolution", "seed": "seed",
           "guidance_scale": "guidance_scale", "base_model": "base_model", "sampler": "sampler",
           "scheduler": "scheduler", "refiner_model": "refiner_model", "refiner_switch": "refiner_switch"}
LEGACY = {"prompt": "Prompt", "negative_prompt": "Negative Prompt", "resolution": "Resolution", "seed": "Seed",
          "guidance_scale": "Guidance Scale", "base_model": "Base Model", "sampler": "Sampler",
          "scheduler": "Scheduler", "refiner_model": "Refiner Model", "refiner_switch": "Refiner Switch"}


def _current(data: dict[str, Any], raw: str) -> Reading:
    notes: list[str] = []
    fields = _common(data, CURRENT, notes)
    steps = whole(data.get("steps")) if "steps" in data else _steps_of(data.get("performance"))
    put(fields, "steps", steps)
    loras, hashes = [], {}
    listed = data.get("loras")
    if isinstance(listed, list):
        for item in listed:      # 2.5: [name, weight, hash]; before: [name, weight]
            if isinstance(item, (list, tuple)) and len(item) in (2, 3):
                spec = lora(item[0], item[1], notes, SOURCE)
                if spec is not None:
                    loras.append(spec)
                    if len(item) == 3 and isinstance(item[2], str) and item[2]:
                        hashes[spec.name] = item[2]
            else:
                bad_shape(notes, SOURCE, "loras", item, "[name, weight, hash]")
    elif listed is not None:
        bad_shape(notes, SOURCE, "loras", listed, "a list")
    if not loras:
        loras = _combined(data, notes)
    if loras:
        fields["loras"] = unique_loras(loras)
    model_hash = data.get("base_model_hash") if isinstance(data.get("base_model_hash"), str) else ""
    return Reading("fooocus", fields, data, raw, model_hash, tuple(hashes.items()), tuple(notes))


def _legacy(data: dict[str, Any], raw: str) -> Reading:
    notes: list[str] = []
    fields = _common(data, LEGACY, notes)
    put(fields, "steps", _steps_of(data.get("Performance")))
    loras = _combined(data, notes)
    if loras:
        fields["loras"] = unique_loras(loras)
    return Reading("fooocus", fields, data, raw, "", (), tuple(notes))


def _combined(data: dict[str, Any], notes: list[str]) -> list:
    """``lora_combined_N`` / ``LoRA N``: ``"name : weight"`` or ``"True : name : weight"`` (enabled flag)."""
    out = []
    for key in sorted((k for k in data if RE_LORA_KEY.match(str(k))), key=lambda k: int(RE_LORA_KEY.match(k)[1])):
        value = data[key]
        parts = [p.strip() for p in value.split(" : ")] if isinstance(value, str) else []
        if len(parts) == 3:
            if parts[0] != "True":
                continue                       # a disabled slot
            parts = parts[1:]
        if len(parts) != 2:
            bad_shape(notes, SOURCE, key, value, '"name : weight"')
            continue
        spec = lora(parts[0], parts[1], notes, SOURCE)
        if spec is not None:
            out.append(spec)
    return out


def _steps_of(performance: Any) -> int | None:
    return PERFORMANCE_STEPS.get(performance.strip().lower()) if isinstance(performance, str) else None


def _a1111_scheme(raw: str) -> Reading:
    """Fooocus's A1111 text: the prompt line holds the full prompt; ``Raw prompt`` the user's."""
    parsed = parse_infotext(raw)
    notes: list[str] = []
    fields = fields_from_infotext(parsed, notes)
    for name, key in (("prompt", "Raw prompt"), ("negative_prompt", "Raw negative prompt")):
        if key in parsed:
            fields[name] = parsed[key]
    loras = []
    for item in parsed.get("Lora weights", "").split(","):
        name, sep, weight = item.rpartition(":")
        if sep:
            spec = lora(name.strip(), weight.strip(), notes, SOURCE)
            if spec is not None:
                loras.append(spec)
    if loras:
        fields["loras"] = unique_loras(loras)
    if "Steps" not in parsed:
        put(fields, "steps", _steps_of(parsed.get("Performance")))
    model_hash, lora_hashes = hashes_of(parsed)
    return Reading("fooocus", fields, parsed, raw, model_hash, lora_hashes, tuple(notes))
