"""What the studio tells a user about a demo-family prompt or size: notices, not errors.

Plain functions over a model's studio.json (no torch, no Gradio), for the UI to show:

- `prompt_notice(prompt, meta)`: the words the model does not know, and its prompt template;
- `size_notice(width, height, meta)`: the size is not one the model was trained on;
- `aspect_presets(meta)`: the trained sizes as aspect presets (label -> (width, height)).

studio.json keys read: "vocabulary" (list of words), "prompt_template" (text), "sizes"
([[width, height], ...], the trained sizes; older folders: "width"/"height"), "name".
"""

from __future__ import annotations

import re
from math import gcd


def words_of(prompt: str) -> list[str]:
    """The words as the demo tokenizers see them: lowercased, anything but letters is a space."""
    return re.sub(r"[^\w\s]|[\d_]", " ", prompt.lower()).split()


def unknown_words(prompt: str, vocabulary: list[str] | set[str]) -> list[str]:
    """Words of `prompt` the model does not know, in order of first use, each once."""
    known, out = set(vocabulary), []
    for word in words_of(prompt):
        if word not in known and word not in out:
            out.append(word)
    return out


def prompt_notice(prompt: str, meta: dict) -> str | None:
    """A notice (not an error) when the prompt has words the model does not know, with the
    template; None when every word is known or the model lists no vocabulary (studio.json)."""
    vocabulary = meta.get("vocabulary")
    if not vocabulary:
        return None
    unknown = unknown_words(prompt, vocabulary)
    if not unknown:
        return None
    listed = ", ".join(f"'{w}'" for w in unknown)
    plural = "these words" if len(unknown) > 1 else "this word"
    return (f"The {meta.get('name', 'selected')} model does not know {plural}: {listed}; it will ignore or "
            f"misread {'them' if len(unknown) > 1 else 'it'}. Prompts like: {meta.get('prompt_template', '')}")


def trained_sizes(meta: dict) -> list[tuple[int, int]]:
    """studio.json "sizes" ([[w, h], ...]); older folders: their one width x height."""
    if "sizes" in meta:
        return [(int(w), int(h)) for w, h in meta["sizes"]]
    if "width" in meta and "height" in meta:
        return [(int(meta["width"]), int(meta["height"]))]
    return []


def size_notice(width: int, height: int, meta: dict) -> str | None:
    """A notice when width x height is not a size the model was trained on (None if it is, or if
    the model lists no sizes)."""
    sizes = trained_sizes(meta)
    if not sizes or (int(width), int(height)) in sizes:
        return None
    listed = ", ".join(f"{w}x{h}" for w, h in sizes)
    return (f"The {meta.get('name', 'selected')} model was trained at {listed} only; at {width}x{height} "
            f"it may draw extra or broken shapes.")


def aspect_presets(meta: dict) -> dict[str, tuple[int, int]]:
    """The trained sizes as aspect presets, e.g. {"1:1 (64x64)": (64, 64), "5:3 (80x48)": (80, 48)}."""
    out = {}
    for w, h in trained_sizes(meta):
        g = gcd(w, h)
        out[f"{w // g}:{h // g} ({w}x{h})"] = (w, h)
    return out
