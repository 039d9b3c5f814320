"""IP-Adapter image prompts from form or raw API values. Plain Python, no Gradio.

The first adapter comes from the IP-Adapter tab's widgets or the ``/ip_adapter`` API's own
parameters (``image`` plus ``images``: its references); further adapters come as JSON
(``prompts_from_json``): a list of objects with ``adapter``, ``scale``, ``blocks``, one reference
image each from the API's ``adapter_images``, in order. Errors name the field and the adapter.
"""

from __future__ import annotations

from typing import Any

from studio.errors import InvalidRequest
from studio.forms import JsonRows, json_rows, number
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


ADAPTERS = JsonRows(field="adapters", noun="adapter", example='[{"adapter": "ip-adapter-plus_sd15", "scale": 0.5}]',
                    known=PROMPT_FIELDS, limit=MAX_IMAGE_PROMPTS, limit_field="image_prompts",
                    limit_what="IP-Adapters")


def prompts_from_json(text: Any, images: Any, first: int = 1) -> list[ImagePrompt]:
    """``[{"adapter": "face", "scale": 0.5}, ...]`` with one reference each from ``images`` (in order)."""
    return [image_prompt(i, images=[ref], **fields) for i, fields, ref in json_rows(ADAPTERS, text, paths(images),
                                                                                  first)]


def true_cfg(value: Any, default: float | None) -> float | None:
    """The true CFG box: empty = ``default`` (FLUX: XLabs' 4.0; others: none); 1 = off."""
    got = number("true_cfg_scale", value, whole=False, default=None)
    if got is None:
        return default
    return float(got)
