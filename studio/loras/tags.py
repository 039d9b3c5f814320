"""``<lora:name:weight>`` in a prompt, as A1111 reads it. Plain Python (no torch, no Gradio).

A1111's syntax: ``<lora:name>`` (weight 1), ``<lora:name:0.8>``, ``<lora:name:te:unet>`` and the
named forms ``te=`` / ``unet=`` (``dyn=`` is ignored); ``<lyco:...>`` is the same. The tags are taken
out of the prompt (the model never reads them) with the space or comma that joined them to it.
This studio applies one weight per LoRA: a tag whose text-encoder and UNet weights differ is
refused, saying so. Every error is an ``InvalidRequest`` naming ``prompt`` and the tag.
"""

from __future__ import annotations

import math
import re

from studio.errors import InvalidRequest

RE_TAG = re.compile(r"<(lora|lyco):([^<>]*)>", re.IGNORECASE)
UNTAGGABLE = set(':<>\n\r')


def _weight(tag: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidRequest("prompt", f"{tag}: the weight {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidRequest("prompt", f"{tag}: the weight must be a finite number, got {text.strip()!r}")
    return value


def parse_tag(body: str) -> tuple[str, float]:
    """The inside of one tag (``name:0.8``, ``name:0.8:0.8``, ``name:te=1:unet=1``) -> (name, weight)."""
    tag = f"<lora:{body}>"
    name, *args = [part.strip() for part in body.split(":")]
    if not name:
        raise InvalidRequest("prompt", f"{tag} needs a LoRA name")
    positional: list[float] = []
    named: dict[str, float] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep:
            if key.strip().lower() in ("te", "unet"):
                named[key.strip().lower()] = _weight(tag, value)
            elif key.strip().lower() != "dyn":
                raise InvalidRequest("prompt", f"{tag}: unknown argument {key.strip()!r} (te=, unet= or a weight)")
        elif arg:
            positional.append(_weight(tag, arg))
    te = named.get("te", positional[0] if positional else 1.0)
    unet = named.get("unet", positional[1] if len(positional) > 1 else te)
    if te != unet:
        raise InvalidRequest("prompt", f"{tag}: separate text-encoder and UNet weights ({te:g} and {unet:g}) are not "
                                       "supported here; give the LoRA one weight")
    return name, float(te)


def _cut(prompt: str, spans: list[tuple[int, int]]) -> str:
    """Remove each span with the space (and comma) that joined it to the text."""
    out = prompt
    for start, end in reversed(spans):
        left, right = start, end
        if left > 0 and out[left - 1] == " ":
            left -= 1
            if left > 0 and out[left - 1] == ",":
                left -= 1
        elif right < len(out) and out[right] == ",":
            right += 1 + (right + 1 < len(out) and out[right + 1] == " ")
        elif right < len(out) and out[right] == " ":
            right += 1
        out = out[:left] + out[right:]
    return out


def take(prompt: str) -> tuple[str, tuple[tuple[str, float], ...]]:
    """The prompt without its LoRA tags, and the tags' (name, weight) pairs in order. The same LoRA
    twice with the same weight counts once; with two weights it is an error."""
    found: dict[str, float] = {}
    spans = []
    for match in RE_TAG.finditer(prompt):
        name, weight = parse_tag(match.group(2))
        if name in found and found[name] != weight:
            raise InvalidRequest("prompt", f"LoRA {name!r} is tagged twice with different weights "
                                           f"({found[name]:g} and {weight:g}); keep one tag")
        found[name] = weight
        spans.append(match.span())
    if not spans:
        return prompt, ()
    return _cut(prompt, spans), tuple(found.items())


def taggable(name: str) -> bool:
    return bool(name) and not (set(name) & UNTAGGABLE) and name == name.strip()


def tag(name: str, weight: float) -> str:
    return f"<lora:{name}:{weight:g}>"


def tags_suffix(prompt: str, loras) -> str:  # noqa: ANN001 - LoraSpec items
    """What ``with_tags`` appends to ``prompt``."""
    text = " ".join(tag(x.name, x.weight) for x in loras if taggable(x.name))
    return ("" if not text or not prompt else " ") + text


def with_tags(prompt: str, loras) -> str:  # noqa: ANN001
    """The prompt as A1111 writes it: its LoRAs as tags at the end (names with ``:`` or ``>`` cannot be tags)."""
    return prompt + tags_suffix(prompt, loras)


def _lenient(body: str) -> tuple[str, float]:
    """A foreign tag as best it can be read: the UNet weight when te and unet differ, 1 when unreadable."""
    try:
        return parse_tag(body)
    except InvalidRequest:
        name, *args = [part.strip() for part in body.split(":")]
        numbers = []
        for arg in args:
            key, sep, value = arg.rpartition("=")
            try:
                numbers.append((key.strip().lower() if sep else "", float(value)))
            except ValueError:
                continue
        unet = [v for k, v in numbers if k == "unet"] or [v for k, v in numbers if not k][1:2] or \
            [v for k, v in numbers if k in ("", "te")][:1] or [1.0]
        return name, unet[0] if math.isfinite(unet[0]) else 1.0


def take_foreign(prompt: str) -> tuple[str, tuple[tuple[str, float], ...]]:
    """``take`` for metadata written elsewhere: never raises. Tags at the end exactly as
    ``with_tags`` writes them come off exactly (so the prompt round-trips); others as ``take`` does."""
    found: dict[str, float] = {}
    spans = []
    for match in RE_TAG.finditer(prompt):
        name, weight = _lenient(match.group(2))
        if name:
            found.setdefault(name, weight)
            spans.append(match.span())
    if not spans:
        return prompt, ()
    written = " ".join(tag(n, w) for n, w in found.items())
    if prompt == written:
        return "", tuple(found.items())
    if prompt.endswith(" " + written):
        return prompt[:-len(written) - 1], tuple(found.items())
    return _cut(prompt, spans), tuple(found.items())


def hash_name(name: str) -> str:
    """A LoRA's name as A1111 writes it in "Lora hashes" (without ``:`` and ``,``)."""
    return name.replace(":", "").replace(",", "")


def lora_hashes(value: str) -> dict[str, str]:
    """``"name: 7c6bad76eb54, other: 0123456789ab"`` -> {name: hash}; entries that are not hex are left out."""
    out = {}
    for item in (value or "").split(","):
        name, _, short = item.rpartition(":")
        short = short.strip().lower()
        if name.strip() and short and all(c in "0123456789abcdef" for c in short):
            out[name.strip()] = short
    return out
