"""Near misses for the shape judge: near-miss shapes it must not accept.

Each near miss is rendered the way the dataset renders (4x supersampled polygon, box-filtered to
64 px, the same size range, the renderer's own outlines for the triangle and square variants) and is "claimed" as the class a lenient judge would
take it for: a lumpy blob or an ellipse as a circle, a rounded or tilted triangle as a triangle.
`python -m studio.demo.eval --validate` prints how many of each the judge accepts; the ones marked
`must_reject` are different shapes to a person at 64 px and must score (near) zero. The subtle
ones (a 4% ripple, a 1.08 ellipse, an octagon, softly rounded corners) are printed for honesty:
they are within a fraction of a pixel of the ideal outline, and the judge may accept them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .dataset import BACKGROUNDS, COLOURS, RADIUS_RANGE, SIZE, SUPERSAMPLE, TRIANGLE_CIRCUM, shape_polygon

Outline = Callable[[np.random.Generator, float, float, float], list[tuple[float, float]]]
_TH = np.linspace(0, 2 * np.pi, 400, endpoint=False)


@dataclass(frozen=True, slots=True)
class NearMiss:
    name: str
    claimed: str  # the class a lenient judge would give it
    must_reject: bool
    outline: Outline


def _blob(amp: float) -> Outline:
    def outline(rng, cx, cy, r):
        k, phase = int(rng.integers(3, 7)), rng.uniform(0, 2 * np.pi)
        rr = r * (1 + amp * np.sin(k * _TH + phase))
        return list(zip(cx + rr * np.cos(_TH), cy + rr * np.sin(_TH)))
    return outline


def _ellipse(aspect: float) -> Outline:
    def outline(rng, cx, cy, r):
        rot = rng.uniform(0, np.pi)
        x, y = r * np.sqrt(aspect) * np.cos(_TH), r / np.sqrt(aspect) * np.sin(_TH)
        return list(zip(cx + x * np.cos(rot) - y * np.sin(rot), cy + x * np.sin(rot) + y * np.cos(rot)))
    return outline


def _polygon(n: int) -> Outline:
    def outline(rng, cx, cy, r):
        t = np.arange(n) * 2 * np.pi / n + rng.uniform(0, 2 * np.pi)
        return list(zip(cx + r * np.cos(t), cy + r * np.sin(t)))
    return outline


def _rounded(points: np.ndarray, radius: float, arc: int = 12) -> list[tuple[float, float]]:
    """Replace every corner of a convex polygon by a circular arc of `radius`."""
    out = []
    for i in range(len(points)):
        p0, p1, p2 = points[i - 1], points[i], points[(i + 1) % len(points)]
        u, v = (p0 - p1) / np.linalg.norm(p0 - p1), (p2 - p1) / np.linalg.norm(p2 - p1)
        angle = np.arccos(np.clip(u @ v, -1, 1))
        bisector = (u + v) / np.linalg.norm(u + v)
        centre = p1 + bisector * radius / np.sin(angle / 2)
        a, b = p1 + u * radius / np.tan(angle / 2) - centre, p1 + v * radius / np.tan(angle / 2) - centre
        a0, a1 = np.arctan2(a[1], a[0]), np.arctan2(b[1], b[0])
        da = (a1 - a0 + np.pi) % (2 * np.pi) - np.pi
        out += [tuple(centre + radius * np.array([np.cos(a0 + da * t), np.sin(a0 + da * t)])) for t in np.linspace(0, 1, arc)]
    return out


def _ideal(shape: str, r: float) -> np.ndarray:
    """The renderer's own outline of `shape`, centred on (0, 0)."""
    return np.array(shape_polygon(shape, 0.0, 0.0, r))


def _rounded_triangle(frac: float) -> Outline:
    def outline(rng, cx, cy, r):
        return [(cx + x, cy + y) for x, y in _rounded(_ideal("triangle", r), frac * TRIANGLE_CIRCUM * r / 2)]
    return outline


def _tilted_triangle(degrees: float) -> Outline:
    def outline(rng, cx, cy, r):
        t = np.deg2rad(degrees) * rng.choice([-1, 1])
        return [(cx + x * np.cos(t) - y * np.sin(t), cy + x * np.sin(t) + y * np.cos(t)) for x, y in _ideal("triangle", r)]
    return outline


def _rounded_square(frac: float) -> Outline:
    def outline(rng, cx, cy, r):
        pts = _ideal("square", r)
        return [(cx + x, cy + y) for x, y in _rounded(pts, frac * pts[1, 0])]  # pts[1, 0]: half the side
    return outline


NEAR_MISSES: tuple[NearMiss, ...] = (
    NearMiss("blob, 6% ripple", "circle", True, _blob(0.06)),
    NearMiss("blob, 10% ripple", "circle", True, _blob(0.10)),
    NearMiss("ellipse 1.12:1", "circle", True, _ellipse(1.12)),
    NearMiss("ellipse 1.2:1", "circle", True, _ellipse(1.2)),
    NearMiss("hexagon", "circle", True, _polygon(6)),
    NearMiss("triangle, tips rounded 50%", "triangle", True, _rounded_triangle(0.5)),
    NearMiss("triangle tilted 8 deg", "triangle", True, _tilted_triangle(8)),
    NearMiss("square, corners rounded 50%", "square", True, _rounded_square(0.5)),
    NearMiss("blob, 4% ripple (subtle)", "circle", False, _blob(0.04)),
    NearMiss("ellipse 1.08:1 (subtle)", "circle", False, _ellipse(1.08)),
    NearMiss("octagon (subtle)", "circle", False, _polygon(8)),
    NearMiss("triangle, tips rounded 30% (subtle)", "triangle", False, _rounded_triangle(0.3)),
)


def render_near_miss(miss: NearMiss, n: int, seed: int = 7) -> np.ndarray:
    """n renders of one near miss, (n, 64, 64, 3) uint8: random colours, the dataset's sizes, centres
    anywhere within 8 px of the middle."""
    rng = np.random.default_rng(seed)
    s, out = SUPERSAMPLE, []
    for _ in range(n):
        background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
        colours = [c for c in COLOURS if c != background]
        colour = colours[rng.integers(len(colours))]
        cx, cy, r = 32 + rng.uniform(-8, 8), 32 + rng.uniform(-8, 8), rng.uniform(*RADIUS_RANGE)
        img = Image.new("RGB", (SIZE * s, SIZE * s), BACKGROUNDS[background])
        ImageDraw.Draw(img).polygon([(x * s, y * s) for x, y in miss.outline(rng, cx, cy, r)], fill=COLOURS[colour])
        out.append(np.asarray(img.resize((SIZE, SIZE), Image.Resampling.BOX), dtype=np.uint8))
    return np.stack(out)
