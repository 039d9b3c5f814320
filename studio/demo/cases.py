"""The eval's cases for the demo adapters, fixed and never drawn by any training stage.

Every prompt here (and studio.demo.captions.FREE_EVAL) is in `HELD_OUT`, which every stage's
caption sampler avoids; the control maps and reference pictures come from seeds no stage uses,
so their sizes and exact places (continuous jitter) were never seen either.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .captions import FREE_EVAL_PROMPTS, Parts, compose
from .dataset import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, ShapeSpec, random_spec

CONTROL_SEED, IP_SEED, LORA_SEED = 9090, 9191, 9292


@dataclass(frozen=True, slots=True)
class ControlCase:
    prompt: str
    colour: str  # the prompt's colour: the picture must have it
    spec: ShapeSpec  # the scene the map is made from: the picture must have its shape and place
    mode: str  # "canny" | "depth"
    kind: str  # "conflict" (shape and place), "conflict-shape", "silent" (no shape, no place), "agree"


@dataclass(frozen=True, slots=True)
class IPCase:
    prompt: str  # no colour
    reference: ShapeSpec  # another shape, place and background; its colour must be drawn
    truth: dict[str, str]  # what the prompt names


@dataclass(frozen=True, slots=True)
class LoraCase:
    prompt: str
    truth: dict[str, str]


def _other(options, current, rng) -> str:
    rest = [o for o in options if o != current]
    return rest[rng.integers(len(rest))]


def control_cases(n: int = 30) -> list[ControlCase]:
    """The issue's case first (a red circle at the left, the canny map of a triangle at the
    right), then n - 1 from CONTROL_SEED: modes alternate, kinds cycle, half with a background."""
    rng = np.random.default_rng(CONTROL_SEED)
    first = replace(random_spec(np.random.default_rng(CONTROL_SEED + 1)), shape="triangle", position="right",
                    cx=43.0, cy=32.0, r=15.0, phrase="at the right")
    out = [ControlCase("a red circle at the left", "red", first, "canny", "conflict")]
    kinds = ("conflict", "conflict-shape", "silent", "conflict", "agree")
    for i in range(n - 1):
        spec = random_spec(rng)
        kind, mode = kinds[i % len(kinds)], ("depth", "canny")[i % 2]
        background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))] if rng.random() < 0.5 else None
        colour = _other(COLOURS, background, rng)
        shape, place = spec.shape, spec.position
        if kind in ("conflict", "conflict-shape"):
            shape = _other(SHAPES, spec.shape, rng)
        if kind == "conflict":
            place = _other(POSITIONS, spec.position, rng)
        if kind == "silent":
            shape = place = None
        prompt = compose(Parts(colour, shape, place, background), place_last=bool(i % 3 == 0), phrase=i % 2)
        out.append(ControlCase(prompt, colour, spec, mode, kind))
    return out


def ip_cases(n: int = 30) -> list[IPCase]:
    """Colour-free prompts; the reference has a colour the prompt's background allows, and
    another shape, place and background than the prompt."""
    rng = np.random.default_rng(IP_SEED)
    out = []
    for i in range(n):
        ref = random_spec(rng)
        shape = _other(SHAPES, ref.shape, rng) if i % 4 else None  # every 4th: "a shape"
        place = _other(POSITIONS, ref.position, rng) if i % 3 else None
        background = _other([b for b in BACKGROUNDS if b != ref.colour], ref.background, rng) if i % 2 else None
        parts = Parts(None, shape or None, place, background)
        if shape is None and place is None and background is None:
            parts = Parts(None, _other(SHAPES, ref.shape, rng), None, None)
        out.append(IPCase(compose(parts, place_last=bool(i % 5 == 0)), ref, parts.truth()))
    return out


def lora_cases(n: int = 12) -> list[LoraCase]:
    """Prompts with colour and shape (so the judge knows what to expect), places and
    backgrounds sometimes left out."""
    rng = np.random.default_rng(LORA_SEED)
    out = []
    for i in range(n):
        spec = random_spec(rng)
        parts = Parts(spec.colour, spec.shape, spec.position if i % 3 else None, spec.background if i % 2 else None)
        out.append(LoraCase(compose(parts, place_last=bool(i % 4 == 1)), parts.truth()))
    return out


HELD_OUT: frozenset[str] = frozenset(
    FREE_EVAL_PROMPTS
    | {c.prompt for c in control_cases()}
    | {c.prompt for c in ip_cases()}
    | {c.prompt for c in lora_cases()}
)
