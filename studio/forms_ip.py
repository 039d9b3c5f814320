"""IP-Adapter image prompts from form or raw API values. Plain Python, no Gradio.

The first adapter comes from the IP-Adapter tab's widgets or the ``/ip_adapter`` API's own
parameters (``image`` plus ``images``: its references); further adapters come as JSON
(``prompts_from_json``): a list of objects with ``adapter``, ``scale``, ``blocks``, one reference
image each from the API's ``adapter_images``, in order. Errors name the field and the adapter.
"""

from __future__ import annotations

import json
from typing import Any

from studio.errors import InvalidRequest
from studio.forms import number
from studio.requests import IP_BLOCKS, LIMITS, MAX_IMAGE_PROMPTS, ImagePrompt

PROMPT_FIELDS = ("adapter", "scale", "blocks")
BLOCK_NAMES = {label.lower(): name for name, label in IP_BLOCKS.items()}


def paths(images: Any) -> list[str]:
    """One path, a list of paths, or Gradio's gallery value ([(path, caption)] / [{"image": ...}])."""
    if images is None or images == "":
        return []
    if isinstance(images, (str, bytes)) or hasattr(images, "__fspath__"):
        images = [images]
    out = []
    for item in images:
        if isinstance(item, (tuple, list)):
            item = item[0] if item else None
        if isinstance(item, dict):                      # gradio's FileData, or a gallery item {"image": FileData}
            image = item.get("image")
            item = image.get("path") if isinstance(image, dict) else item.get("path")
        if item:
            out.append(str(item))
    return out


def blocks_of(value: Any) -> str:
    """A blocks preset by name ("style") or by its label ("Style only"); empty is "all"."""
    text = "" if value is None else str(value).strip()
    if not text:
        return "all"
    name = text if text in IP_BLOCKS else BLOCK_NAMES.get(text.lower())
    if name is None:
        raise InvalidRequest("blocks", f"must be one of {', '.join(IP_BLOCKS)}, got {text!r}")
    return name


def image_prompt(index: int, *, images: Any, adapter: Any = "", scale: Any = 0.6,
                 blocks: Any = "all") -> ImagePrompt:
    """One adapter (``index`` counts from 0) and its reference image(s)."""
    refs = paths(images)
    if not refs:
        raise InvalidRequest("image_prompts", f"IP-Adapter {index + 1} has no reference image: add the picture "
                                              "whose style, subject or face the image should take")
    lo, hi = LIMITS["ip_scale"]
    value = number(f"image_prompts: IP-Adapter {index + 1} scale", scale, whole=False, default=0.6)
    if not lo <= value <= hi:
        raise InvalidRequest("image_prompts", f"IP-Adapter {index + 1} scale must be within {lo}..{hi}, got {value:g}")
    return ImagePrompt(tuple(refs), adapter=("" if adapter is None else str(adapter).strip()), scale=value,
                       blocks=blocks_of(blocks))


def prompts_from_json(text: Any, images: Any, first: int = 1) -> list[ImagePrompt]:
    """``[{"adapter": "face", "scale": 0.5}, ...]`` with one reference each from ``images`` (in order)."""
    refs = paths(images)
    if text is None or (isinstance(text, str) and not text.strip()):
        if refs:
            raise InvalidRequest("adapters", f"{len(refs)} adapter image(s) but no adapters: describe each in "
                                             'adapters (a JSON list, e.g. [{"adapter": "ip-adapter-plus_sd15"}])')
        return []
    try:
        data = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as err:
        raise InvalidRequest("adapters", f"must be a JSON list of adapters ({err.msg} at column {err.colno})") from None
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise InvalidRequest("adapters", 'must be a JSON list of objects, e.g. [{"adapter": "face", "scale": 0.5}]')
    if len(data) != len(refs):
        raise InvalidRequest("adapters", f"{len(data)} adapter(s) but {len(refs)} adapter image(s): give one "
                                         "reference per adapter, in order")
    if first + len(data) > MAX_IMAGE_PROMPTS:
        raise InvalidRequest("image_prompts", f"at most {MAX_IMAGE_PROMPTS} IP-Adapters at once, got "
                                              f"{first + len(data)}")
    out = []
    for i, (fields, ref) in enumerate(zip(data, refs, strict=True)):
        unknown = sorted(set(fields) - set(PROMPT_FIELDS))
        if unknown:
            raise InvalidRequest("adapters", f"adapter {first + i + 1}: unknown field(s) {unknown}; known: "
                                             f"{', '.join(PROMPT_FIELDS)}")
        out.append(image_prompt(first + i, images=[ref], **fields))
    return out


def true_cfg(value: Any, default: float | None) -> float | None:
    """The true CFG box: empty = ``default`` (FLUX: XLabs' 4.0; others: none); 1 = off."""
    got = number("true_cfg_scale", value, whole=False, default=None)
    if got is None:
        return default
    return float(got)
