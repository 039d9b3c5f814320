"""Procedural captioned dataset for the embedded demo model.

Every image is one flat-coloured shape (circle, square or triangle) on a flat background,
64x64 px, antialiased by 4x supersampling. Captions read like
"a red circle at the left on a blue background". Generation is a pure function of a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64
SUPERSAMPLE = 4

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

# Shape colours and background colours are two separate palettes (a name may appear in both,
# e.g. "blue", with the same RGB). A shape never has the background's colour name.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (40, 70, 230),
    "yellow": (245, 220, 30),
    "purple": (150, 50, 200),
    "orange": (250, 130, 20),
    "white": (245, 245, 245),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (10, 10, 10),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    "blue": (40, 70, 230),
    "green": (30, 170, 50),
    "brown": (120, 70, 30),
}

# Position name -> centre (x, y) in pixels; "center" is accepted as a synonym of "centre".
OFFSET = 11
POSITIONS: dict[str, tuple[int, int]] = {
    "left": (32 - OFFSET, 32),
    "right": (32 + OFFSET, 32),
    "top": (32, 32 - OFFSET),
    "bottom": (32, 32 + OFFSET),
    "centre": (32, 32),
}
POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("at the left",),
    "right": ("at the right",),
    "top": ("at the top",),
    "bottom": ("at the bottom",),
    "centre": ("in the centre", "in the center"),
}

RADIUS_RANGE = (13.0, 18.0)  # "radius" of the shape (circle radius; others scaled to similar area)
JITTER = 2.0  # +- px around the named position

# Size of the other shapes relative to the circle radius r (similar visual weight).
SQUARE_HALF = 0.9  # half side = 0.9 r
TRIANGLE_CIRCUM = 1.2  # circumradius = 1.2 r, equilateral, pointing up, bbox centred


@dataclass(frozen=True, slots=True)
class ShapeSpec:
    shape: str
    colour: str
    background: str
    position: str
    cx: float
    cy: float
    r: float
    phrase: str  # position phrase used in the caption

    @property
    def caption(self) -> str:
        return f"{article(self.colour)} {self.colour} {self.shape} {self.phrase} on a {self.background} background"


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def vocabulary() -> list[str]:
    """Every word a prompt can use (sorted, unique)."""
    words = {"a", "an", "on", "background", "the"}
    words.update(SHAPES)
    words.update(COLOURS)
    words.update(BACKGROUNDS)
    for phrases in POSITION_PHRASES.values():
        for phrase in phrases:
            words.update(phrase.split())
    return sorted(words)


def caption_for(shape: str, colour: str, background: str, position: str) -> str:
    return f"{article(colour)} {colour} {shape} {POSITION_PHRASES[position][0]} on a {background} background"


def shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    """Vertices of the ideal outline (None for the circle)."""
    if shape == "circle":
        return None
    if shape == "square":
        h = SQUARE_HALF * r
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "triangle":
        big_r = TRIANGLE_CIRCUM * r
        half_w = big_r * np.sqrt(3) / 2
        half_h = 0.75 * big_r  # total height 1.5 R, bbox centred on (cx, cy)
        return [(cx, cy - half_h), (cx + half_w, cy + half_h), (cx - half_w, cy + half_h)]
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def render(spec: ShapeSpec) -> np.ndarray:
    """Render one spec to an HxWx3 uint8 array."""
    s = SUPERSAMPLE
    img = Image.new("RGB", (SIZE * s, SIZE * s), BACKGROUNDS[spec.background])
    draw = ImageDraw.Draw(img)
    fill = COLOURS[spec.colour]
    # Pixel centres are at (i + 0.5); in supersampled space a coordinate x maps to x * s.
    poly = shape_polygon(spec.shape, spec.cx, spec.cy, spec.r)
    if poly is None:
        x0, y0 = (spec.cx - spec.r) * s, (spec.cy - spec.r) * s
        x1, y1 = (spec.cx + spec.r) * s, (spec.cy + spec.r) * s
        draw.ellipse([x0, y0, x1, y1], fill=fill)
    else:
        draw.polygon([(x * s, y * s) for x, y in poly], fill=fill)
    img = img.resize((SIZE, SIZE), Image.Resampling.BOX)
    return np.asarray(img, dtype=np.uint8)


def random_spec(rng: np.random.Generator) -> ShapeSpec:
    shape = SHAPES[rng.integers(len(SHAPES))]
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    colours = [c for c in COLOURS if c != background]
    colour = colours[rng.integers(len(colours))]
    position = list(POSITIONS)[rng.integers(len(POSITIONS))]
    phrases = POSITION_PHRASES[position]
    phrase = phrases[rng.integers(len(phrases))]
    px, py = POSITIONS[position]
    cx = px + rng.uniform(-JITTER, JITTER)
    cy = py + rng.uniform(-JITTER, JITTER)
    r = rng.uniform(*RADIUS_RANGE)
    return ShapeSpec(shape, colour, background, position, float(cx), float(cy), float(r), phrase)


def make_specs(n: int, seed: int) -> list[ShapeSpec]:
    rng = np.random.default_rng(seed)
    return [random_spec(rng) for _ in range(n)]


def make_dataset(n: int, seed: int) -> tuple[np.ndarray, list[str], list[ShapeSpec]]:
    """n images (N, 64, 64, 3) uint8, their captions and specs; deterministic in (n, seed)."""
    specs = make_specs(n, seed)
    images = np.stack([render(s) for s in specs]) if specs else np.zeros((0, SIZE, SIZE, 3), np.uint8)
    return images, [s.caption for s in specs], specs


def eval_prompts() -> list[tuple[str, dict[str, str]]]:
    """A fixed, balanced prompt set: 3 shapes x 5 positions x varied colours/backgrounds (30 prompts)."""
    colours = list(COLOURS)
    backgrounds = list(BACKGROUNDS)
    out = []
    k = 0
    for shape in SHAPES:
        for position in POSITIONS:
            for _ in range(2):
                background = backgrounds[k % len(backgrounds)]
                colour = colours[(k * 3 + 1) % len(colours)]
                if colour == background:
                    colour = colours[(k * 3 + 2) % len(colours)]
                k += 1
                truth = {"shape": shape, "colour": colour, "background": background, "position": position}
                out.append((caption_for(shape, colour, background, position), truth))
    return out
