"""Procedural captioned dataset for the embedded demo model.

Every image is one flat-coloured shape (circle, square or triangle) on a flat background,
antialiased by 4x supersampling, on one of the trained canvases (`SIZES`: 64x64, 80x48, 48x80).
Template captions read like "a red circle at the left on a blue background" (free wordings:
studio.demo.captions). Generation is a pure function of a seed.

Geometry on a W x H canvas is the 64x64 geometry scaled: places are 11/64 of the width (left,
right) or height (top, bottom) from the middle, sizes and jitter scale with min(W, H) / 64.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64
SUPERSAMPLE = 4
SIZES: tuple[tuple[int, int], ...] = ((64, 64), (80, 48), (48, 80))  # trained canvases, (width, height)

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


def positions(width: int = SIZE, height: int = SIZE) -> dict[str, tuple[float, float]]:
    """Place name -> centre (x, y) in px on a width x height canvas (POSITIONS at 64x64)."""
    cx, cy, dx, dy = width / 2, height / 2, OFFSET * width / SIZE, OFFSET * height / SIZE
    return {"left": (cx - dx, cy), "right": (cx + dx, cy), "top": (cx, cy - dy), "bottom": (cx, cy + dy),
            "centre": (cx, cy)}


def canvas_scale(width: int = SIZE, height: int = SIZE) -> float:
    """Shape sizes and jitter scale with the shorter side (1.0 at 64x64)."""
    return min(width, height) / SIZE

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
    width: int = SIZE
    height: int = SIZE

    @property
    def caption(self) -> str:
        return f"{article(self.colour)} {self.colour} {self.shape} {self.phrase} on a {self.background} background"


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


# Words added after the first model shipped. The tokenizers list them after the first words, so
# that every first word keeps its token id (and the frozen text encoders their embeddings).
ADDED_WORDS: tuple[str, ...] = ("shape",)  # "a red shape": a prompt that leaves the shape out


def first_words() -> list[str]:
    """The first model's words, sorted (their token ids are fixed by this order)."""
    words = {"a", "an", "on", "background", "the"}
    words.update(SHAPES)
    words.update(COLOURS)
    words.update(BACKGROUNDS)
    for phrases in POSITION_PHRASES.values():
        for phrase in phrases:
            words.update(phrase.split())
    return sorted(words)


def token_words() -> list[str]:
    """Every word in token-id order: the first words, then the added ones."""
    return first_words() + [w for w in ADDED_WORDS if w not in first_words()]


def vocabulary() -> list[str]:
    """Every word a prompt can use (sorted, unique)."""
    return sorted(token_words())


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


def inradius(shape: str, r: float) -> float:
    """Distance from the shape's centre (the triangle's centroid) to its nearest edge."""
    return {"circle": r, "square": SQUARE_HALF * r, "triangle": TRIANGLE_CIRCUM * r / 2}[shape]


def _draw(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill, s: int) -> None:
    # Pixel centres are at (i + 0.5); in supersampled space a coordinate x maps to x * s.
    poly = shape_polygon(shape, cx, cy, r)
    if poly is None:
        draw.ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s], fill=fill)
    else:
        draw.polygon([(x * s, y * s) for x, y in poly], fill=fill)


def render(spec: ShapeSpec, outline: float = 0.0) -> np.ndarray:
    """Render one spec to an HxWx3 uint8 array.

    outline > 0 draws the shape hollow: a band `outline` px wide inside the filled outline (the
    outer edge is exactly the filled shape's); a band as wide as the inradius is the filled shape.
    """
    s = SUPERSAMPLE
    img = Image.new("RGB", (spec.width * s, spec.height * s), BACKGROUNDS[spec.background])
    draw = ImageDraw.Draw(img)
    _draw(draw, spec.shape, spec.cx, spec.cy, spec.r, COLOURS[spec.colour], s)
    rho = inradius(spec.shape, spec.r)
    if 0 < outline < rho:
        # The inner edge: the same shape shrunk about its centre (the triangle's centroid lies
        # 0.25 R below its bbox centre) so that every edge moves in by `outline`.
        k = (rho - outline) / rho
        dy = 0.25 * TRIANGLE_CIRCUM * spec.r * (1 - k) if spec.shape == "triangle" else 0.0
        _draw(draw, spec.shape, spec.cx, spec.cy + dy, spec.r * k, BACKGROUNDS[spec.background], s)
    img = img.resize((spec.width, spec.height), Image.Resampling.BOX)
    return np.asarray(img, dtype=np.uint8)


def extent(shape: str, r: float) -> tuple[float, float, float, float]:
    """(left, right, up, down) reach of the shape from (cx, cy), in px."""
    if shape == "circle":
        return r, r, r, r
    if shape == "square":
        return (SQUARE_HALF * r,) * 4
    big_r = TRIANGLE_CIRCUM * r
    return big_r * np.sqrt(3) / 2, big_r * np.sqrt(3) / 2, 0.75 * big_r, 0.75 * big_r


def scaled(spec: ShapeSpec, factor: float, margin: float = 1.0) -> ShapeSpec:
    """The same spec with the shape `factor` times larger, moved toward the middle just enough
    to stay `margin` px inside the canvas (a big shape at the left touches the left edge)."""
    r = spec.r * factor
    left, right, up, down = extent(spec.shape, r)
    cx = min(max(spec.cx, left + margin), spec.width - right - margin)
    cy = min(max(spec.cy, up + margin), spec.height - down - margin)
    return replace(spec, cx=float(cx), cy=float(cy), r=float(r))


def random_spec(rng: np.random.Generator, width: int = SIZE, height: int = SIZE) -> ShapeSpec:
    shape = SHAPES[rng.integers(len(SHAPES))]
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    colours = [c for c in COLOURS if c != background]
    colour = colours[rng.integers(len(colours))]
    position = list(POSITIONS)[rng.integers(len(POSITIONS))]
    phrases = POSITION_PHRASES[position]
    phrase = phrases[rng.integers(len(phrases))]
    px, py = positions(width, height)[position]
    k = canvas_scale(width, height)
    cx = px + rng.uniform(-JITTER, JITTER) * k
    cy = py + rng.uniform(-JITTER, JITTER) * k
    r = rng.uniform(*RADIUS_RANGE) * k
    return ShapeSpec(shape, colour, background, position, float(cx), float(cy), float(r), phrase, width, height)


def make_specs(n: int, seed: int, width: int = SIZE, height: int = SIZE) -> list[ShapeSpec]:
    rng = np.random.default_rng(seed)
    return [random_spec(rng, width, height) for _ in range(n)]


def make_dataset(n: int, seed: int, width: int = SIZE, height: int = SIZE) -> tuple[np.ndarray, list[str], list[ShapeSpec]]:
    """n images (N, H, W, 3) uint8, their template captions and specs; deterministic in the arguments."""
    specs = make_specs(n, seed, width, height)
    images = np.stack([render(s) for s in specs]) if specs else np.zeros((0, height, width, 3), np.uint8)
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
