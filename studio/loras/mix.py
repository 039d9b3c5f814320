"""The LoRA mixer's model: entries (name, weight, on/off), as plain data. No Gradio.

Every generating tab takes its LoRAs as text, ``name:weight, name2:weight`` (the API's ``loras``);
the mixer is that text with switches: an entry that is off stays in the mixer and out of the text.
Typed text comes back into the mixer with ``from_text`` (entries that are off are kept).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from studio import forms
from studio.errors import InvalidRequest
from studio.loras.library import check_name
from studio.requests import LIMITS, LoraSpec, merge_prompt_loras


@dataclass(frozen=True, slots=True)
class MixEntry:
    name: str
    weight: float = 1.0
    on: bool = True
    hash: str = ""

    def __post_init__(self) -> None:
        check_name(self.name)
        check_weight(self.name, self.weight)


def check_weight(name: str, weight) -> float:  # noqa: ANN001 - whatever a widget sent
    """A mixer weight: a finite number within ``LIMITS["lora_weight"]``; ``InvalidRequest`` otherwise."""
    lo, hi = LIMITS["lora_weight"]
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
        raise InvalidRequest("loras", f"weight of {name!r} must be a number within {lo}..{hi}, got {weight!r}")
    if not lo <= weight <= hi:
        raise InvalidRequest("loras", f"weight of {name!r} must be within {lo}..{hi}, got {weight:g}")
    return float(weight)


def to_text(entries: tuple[MixEntry, ...] | list[MixEntry]) -> str:
    """The entries that are on, as every tab's ``loras`` text."""
    return forms.format_loras(tuple(LoraSpec(e.name, e.weight) for e in entries if e.on))


def specs(entries) -> tuple[LoraSpec, ...]:  # noqa: ANN001
    return tuple(LoraSpec(e.name, e.weight, e.hash) for e in entries if e.on)


def from_text(text: str, previous: tuple[MixEntry, ...] = ()) -> tuple[MixEntry, ...]:
    """Typed ``loras`` text -> entries: what the text names is on (in its order), entries that
    were off stay (after them). ``InvalidRequest`` names a bad name or weight."""
    parsed = forms.parse_loras(text)
    names = [s.name for s in parsed]
    if len(set(names)) != len(names):
        raise InvalidRequest("loras", f"each LoRA may appear once, got {names}")
    hashes = {e.name: e.hash for e in previous}
    out = [MixEntry(s.name, s.weight, True, hashes.get(s.name, "")) for s in parsed]
    out += [e for e in previous if not e.on and e.name not in names]
    return tuple(out)


def put(entries: tuple[MixEntry, ...], name: str, weight: float, hash: str = "") -> tuple[MixEntry, ...]:  # noqa: A002
    """Add a LoRA (on), or set the weight of the one there (and switch it on)."""
    entry = MixEntry(name, check_weight(name, weight), True, hash)
    if any(e.name == name for e in entries):
        return tuple(replace(e, weight=entry.weight, on=True, hash=hash or e.hash) if e.name == name else e
                     for e in entries)
    return (*entries, entry)


def toggle(entries: tuple[MixEntry, ...], name: str) -> tuple[MixEntry, ...]:
    return tuple(replace(e, on=not e.on) if e.name == name else e for e in entries)


def remove(entries: tuple[MixEntry, ...], name: str) -> tuple[MixEntry, ...]:
    return tuple(e for e in entries if e.name != name)


def effective(prompt: str, text: str) -> tuple[tuple[LoraSpec, ...], tuple[LoraSpec, ...], str]:
    """What a generation would use: (the prompt's tags, the whole mix, "" or the error it would
    raise). The mixer shows it, so the tags and the mixer are seen to agree."""
    from studio.loras.tags import take

    try:
        _, tagged = take(prompt or "")
        listed = forms.parse_loras(text)
        _, merged = merge_prompt_loras(prompt or "", listed)
    except InvalidRequest as err:
        return (), (), str(err)
    return tuple(LoraSpec(n, w) for n, w in tagged), merged, ""
