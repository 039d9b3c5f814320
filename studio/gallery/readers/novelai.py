"""NovelAI: PNG text chunks ``Title`` ("NovelAI generated image", earlier "AI generated image"),
``Description`` (the prompt), ``Software`` ("NovelAI"), ``Source`` (the model: "Stable Diffusion XL
C1E1DE52", "NovelAI Diffusion V4.5 4BFE7C8D") and ``Comment``, a JSON object:

* older images: ``{"steps", "sampler", "seed", "strength", "noise", "scale", "uc"}`` (the prompt is
  only in ``Description``);
* V3/V4: also ``prompt``, ``width``, ``height``, ``noise_schedule``, ``cfg_rescale``,
  ``request_type``, and V4's ``v4_prompt`` / ``v4_negative_prompt``
  (``{"caption": {"base_caption": ..., "char_captions": [{"char_caption": ...}]}}``); ``uc`` may be null.

NovelAI's models run only at NovelAI: the model id is the ``Source`` name, for the record.
"""

from __future__ import annotations

import re
from typing import Any

from studio.gallery.readers import Reading, Size, Unreadable
from studio.gallery.readers.values import json_value, kind_of, put, read_fields, real, sampler, text, whole

SOURCE = "NovelAI"
RE_SOURCE_HASH = re.compile(r"\s+[0-9A-F]{8}$")


def _caption(value: Any) -> str | None:
    """V4's base caption, with each character's caption after it."""
    caption = value.get("caption") if isinstance(value, dict) else None
    if not isinstance(caption, dict) or not isinstance(caption.get("base_caption"), str):
        return None
    parts = [caption["base_caption"]]
    for char in caption.get("char_captions") or ():
        if isinstance(char, dict) and isinstance(char.get("char_caption"), str) and char["char_caption"]:
            parts.append(char["char_caption"])
    return ", ".join(p for p in parts if p)


def read(chunks: dict[str, str], size: Size) -> Reading | None:
    if chunks.get("Software", "").strip() != "NovelAI" and not chunks.get("Source", "").startswith("NovelAI"):
        return None
    raw = chunks.get("Comment")
    data = json_value(raw) if raw else None
    if raw and not isinstance(data, dict):
        raise Unreadable(f"NovelAI 'Comment' is {kind_of(data) if data is not None else 'not JSON'}, not an object")
    data = data or {}
    notes: list[str] = []
    fields: dict[str, Any] = {}
    prompt = text(data.get("prompt")) or _caption(data.get("v4_prompt")) or chunks.get("Description")
    put(fields, "prompt", prompt)
    negative = text(data.get("uc"))
    put(fields, "negative_prompt", negative if negative is not None else _caption(data.get("v4_negative_prompt")))
    read_fields(fields, notes, SOURCE, data, (("seed", "seed", whole), ("steps", "steps", whole),
                                              ("guidance", "scale", real), ("width", "width", whole),
                                              ("height", "height", whole)))
    put(fields, "scheduler", sampler(data.get("sampler"), data.get("noise_schedule")))
    model = RE_SOURCE_HASH.sub("", chunks.get("Source", "").strip())
    if model:
        fields["model_id"] = model
    if str(data.get("request_type") or "").lower().startswith("img2img"):
        notes.append("NovelAI img2img: its input image is not in the file; read as txt2img")
    parameters = {key: chunks[key] for key in ("Title", "Description", "Software", "Source", "Generation time")
                  if key in chunks}
    parameters["Comment"] = data
    return Reading("novelai", fields, parameters, raw or "", "", (), tuple(notes))
