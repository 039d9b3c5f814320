"""What the studio tells a user about a prompt or a size for a model: notices, not errors.

A model's studio.json may list the words it knows (``vocabulary``, with a ``prompt_template``) and
the sizes it was trained at (``sizes``: [[width, height], ...]); the embedded demo model does. Any
other word or size still runs: the user is told what the model will make of it. Plain functions
over a ``ModelEntry``'s defaults (no torch, no Gradio).
"""

from __future__ import annotations

import re
from math import gcd

RATIOS = ("1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16")


def words_of(prompt: str) -> list[str]:
    """The words as a word-level vocabulary sees them: lowercased; anything but letters is a space."""
    return re.sub(r"[^\w\s]|[\d_]", " ", prompt.lower()).split()


def unknown_words(prompt: str, vocabulary) -> list[str]:  # noqa: ANN001 - any collection of words
    """Words of ``prompt`` the model does not know, in order of first use, each once."""
    known, out = set(vocabulary), []
    for word in words_of(prompt):
        if word not in known and word not in out:
            out.append(word)
    return out


def prompt_notice(prompt: str, label: str, defaults: dict) -> str | None:
    vocabulary = defaults.get("vocabulary")
    unknown = unknown_words(prompt, vocabulary) if vocabulary else []
    if not unknown:
        return None
    listed = ", ".join(f"'{w}'" for w in unknown)
    return (f"{label} does not know {'these words' if len(unknown) > 1 else 'this word'}: {listed}; it will "
            f"ignore or misread {'them' if len(unknown) > 1 else 'it'}. Prompts like: "
            f"{defaults.get('prompt_template', '')}")


def trained_sizes(defaults: dict) -> list[tuple[int, int]]:
    return [(int(w), int(h)) for w, h in defaults.get("sizes") or ()]


def size_notice(width: int, height: int, label: str, defaults: dict) -> str | None:
    sizes = trained_sizes(defaults)
    if not sizes or (int(width), int(height)) in sizes:
        return None
    listed = ", ".join(f"{w}x{h}" for w, h in sizes)
    return f"{label} was trained at {listed} only; at {width}x{height} it may draw extra or broken shapes."


def ratio_size(base: tuple[int, int], ratio: str) -> tuple[int, int]:
    """Keep the model's native pixel count, change the shape; sides are multiples of 16."""
    a, b = (int(x) for x in ratio.split(":"))
    width = (base[0] * base[1] * a / b) ** 0.5
    height = width * b / a
    return max(16, round(width / 16) * 16), max(16, round(height / 16) * 16)


def aspect_presets(default_size: tuple[int, int], defaults: dict) -> dict[str, tuple[int, int]]:
    """Aspect presets for the size picker: exactly the trained sizes when the model lists them,
    else the usual ratios at the model's native pixel count."""
    sizes = trained_sizes(defaults)
    if sizes:
        out = {}
        for w, h in sizes:
            g = gcd(w, h)
            out[f"{w // g}:{h // g} ({w}x{h})"] = (w, h)
        return out
    return {ratio: ratio_size(default_size, ratio) for ratio in RATIOS}
