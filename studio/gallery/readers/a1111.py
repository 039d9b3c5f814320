"""AUTOMATIC1111 / Forge (and every tool that writes their text): the ``parameters`` chunk, or in JPEG
and WebP the EXIF UserComment, as A1111's ``modules/images.py`` writes it::

    <prompt>
    Negative prompt: <negative>
    Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x768,
    Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.10.1

Parsing is ``studio.gallery.infotext`` (the studio writes the same text); every key is kept.
Hashes: ``Model hash`` (sha256 of the file, first 10 hex: Civitai's AutoV2), ``Lora hashes``
(``name: hash``, the sha256 of a LoRA's tensors after its header, first 12 hex: AutoV3), and
Civitai's ``Hashes`` JSON (``{"model": ..., "lora:name": ...}``).
"""

from __future__ import annotations

from studio.gallery.infotext import fields_from_infotext, parse_infotext
from studio.gallery.readers import Reading, Size, Unreadable
from studio.gallery.readers.values import json_value, kind_of


def read(chunks: dict[str, str], size: Size) -> Reading | None:
    text = chunks.get("parameters")
    if not text or not text.strip():
        return None
    if text.lstrip()[:1] in "{[":
        data = json_value(text)
        if data is not None:            # JSON that the JSON-speaking readers before this one did not know
            keys = f" with keys {sorted(data)[:8]}" if isinstance(data, dict) else ""
            raise Unreadable(f"'parameters' holds JSON ({kind_of(data)}{keys}), not A1111 text, and no reader "
                             "knows that shape")
    parsed = parse_infotext(text)
    notes: list[str] = []
    fields = fields_from_infotext(parsed, notes)
    model_hash, lora_hashes = hashes_of(parsed)
    return Reading("a1111", fields, parsed, text, model_hash, lora_hashes, tuple(notes))


def hashes_of(parsed: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The model hash and (LoRA name, hash) pairs an A1111 text names."""
    model = parsed.get("Model hash", "").strip()
    loras: dict[str, str] = {}
    for item in parsed.get("Lora hashes", "").split(","):
        name, sep, digest = item.rpartition(":")
        if sep and name.strip() and digest.strip():
            loras[name.strip()] = digest.strip()
    civitai = json_value(parsed.get("Hashes", ""))
    if isinstance(civitai, dict):
        for key, digest in civitai.items():
            if not isinstance(key, str) or not isinstance(digest, str):
                continue
            if key.lower() == "model" and not model:
                model = digest.strip()
            elif key.lower().startswith("lora:"):
                loras.setdefault(key[5:].strip(), digest.strip())
    return model, tuple(loras.items())
