"""What the LoRA tab shows, as plain data and text (no Gradio): library rows, a LoRA's details,
the mixer's rows with what the prompts ask for, the memory line, the ``/loras`` API records.

Everything a file says about itself is shown as text: metadata is escaped before it reaches
Markdown (a title could hold a link or an image that the page would otherwise fetch).
"""

from __future__ import annotations

import re
from typing import Any

from studio.loras.families import LORA_FAMILIES
from studio.loras.library import LoraInfo, LoraLibrary
from studio.loras.mix import MixEntry
from studio.models.catalog import Family
from studio.models.memory import fmt_bytes
from studio.requests import LoraSpec

LIBRARY_HEADERS = ("LoRA", "Family", "Fits", "Rank", "Size", "Title", "Trigger words")
MIX_HEADERS = ("LoRA", "Weight", "On", "From", "Note")
SHORT = {"flux1": "FLUX.1", "flux2": "FLUX.2", "sd3": "SD3", "sdxl": "SDXL", "sd15": "SD1.5"}
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def escape(text: object) -> str:
    """Markdown-inert text (one line)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def family_choices() -> list[tuple[str, str]]:
    return [("All families", "")] + [(f.label, f.name) for f in LORA_FAMILIES.values()]


def fits_text(info: LoraInfo, family: Family | None) -> str:
    if info.problem:
        return "no: " + info.problem.split(":")[0] if ":" in info.problem[:40] else "no: cannot be used"
    if family is None:
        return ""
    ok, why = info.fits(family)
    return ("yes" if not why else "maybe") if ok else "no"


def library_rows(infos: list[LoraInfo], family: Family | None) -> list[list[Any]]:
    return [[info.name, " or ".join(SHORT.get(f, f) for f in info.families) or "unknown", fits_text(info, family),
             info.rank or "", fmt_bytes(info.size),
             info.facts.title, ", ".join(info.facts.trigger_words)] for info in infos]


def record(info: LoraInfo, family: Family | None) -> dict[str, Any]:
    """One LoRA for the ``/loras`` API: what it is and, for a model's family, whether it fits and why not."""
    out = info.to_dict()
    if family is not None:
        ok, why = info.fits(family)
        out.update(fits=ok, why=why)
    return out


def details(info: LoraInfo, family: Family | None, digest: str = "") -> str:
    f = info.facts
    lines = [f"**{escape(info.name)}** · {escape(info.family_label)}"
             + (f" (from {escape(info.family_source)})" if info.family_source else "")
             + f" · {escape(info.layout)} layout · rank {info.rank or '?'} · {fmt_bytes(info.size)}"]
    if info.problem:
        lines.append(f"Cannot be used: {escape(info.problem)}")
    elif family is not None:
        ok, why = info.fits(family)
        lines.append(f"Fits {escape(family.label)}" + (f": {escape(why)}" if why else "") if ok
                     else f"Does not fit: {escape(why)}")
    for label, value in (("Title", f.title), ("Description", f.description), ("Base model", f.base_model),
                         ("Resolution", f.resolution), ("Trigger words", ", ".join(f.trigger_words)),
                         ("Training tags", ", ".join(f"{t} ({n})" for t, n in f.tags)),
                         ("Preferred weight", "" if f.preferred_weight is None else f"{f.preferred_weight:g}"),
                         ("Hash (A1111)", digest[:12]), ("Hub repo", info.hub)):
        if value:
            lines.append(f"{label}: {escape(value)}")
    return "  \n".join(lines)


def mix_rows(entries: tuple[MixEntry, ...], tags: dict[str, tuple[tuple[str, float], ...]],
             library: LoraLibrary, family: Family | None) -> list[list[Any]]:
    """The mixer's entries, then the LoRAs a prompt asks for that the mixer lacks; each with what
    generating would say: a tag that disagrees with the mixer, a LoRA that is not there or does not fit."""
    rows = []

    def note(name: str, weight: float) -> str:
        said = [f"{tab} prompt says {w:g}" for tab, pairs in tags.items() for n, w in pairs if n == name and w != weight]
        if said:
            return "; ".join(said) + ": change one, they must agree"
        try:
            info = library.find(name)
        except Exception as err:  # noqa: BLE001 - shown, not raised: the mixer explains what generating would
            return str(err).split(". ")[0]
        ok, why = info.fits(family) if family is not None else (not info.problem, info.problem)
        return why

    for e in entries:
        rows.append([e.name, e.weight, "on" if e.on else "off", "mixer", note(e.name, e.weight) if e.on else ""])
    listed = {e.name for e in entries if e.on}
    for tab, pairs in tags.items():
        for name, weight in pairs:
            if name not in listed:
                rows.append([name, weight, "on", f"{tab} prompt", note(name, weight)])
    return rows


def memory_line(rows) -> str:  # noqa: ANN001 - LoraRow items
    if not rows:
        return "No LoRA is loaded in a model now."
    parts = [f"{escape(r.path.rsplit('/', 1)[-1])} in {escape(r.model_id)}: {fmt_bytes(r.bytes)}"
             + (" (fused)" if r.fused else "" if r.weight is not None else " (idle)") for r in rows]
    return f"Loaded in models ({fmt_bytes(sum(r.bytes for r in rows))}): " + " · ".join(parts)


def spec_of(entry: MixEntry) -> LoraSpec:
    return LoraSpec(entry.name, entry.weight, entry.hash)
