"""Strict classifier for demo-model images: what does a 64x64 picture actually show?

Colour and background are the nearest palette colours. The shape is judged by fitting the ideal
outline of every class (circle, square, triangle; same geometry as the dataset renderer) to the
segmented shape mask and comparing: a class is accepted only if it fits best AND the fit is close
both in area (IoU) and along the outline (boundary F-score within 1 px). A round-ish blob, a rounded
square or a lumpy circle therefore scores as "none", not as a circle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dataset import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, SIZE, SQUARE_HALF, TRIANGLE_CIRCUM

MIN_IOU = 0.95
MIN_BOUNDARY_F = 0.85
MIN_PIXELS = 40

_YS, _XS = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
_SHIFTS = np.array([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=np.float32)
_SCALES = np.array([0.94, 0.97, 1.0, 1.03, 1.06], dtype=np.float32)


@dataclass(frozen=True, slots=True)
class Verdict:
    colour: str | None
    background: str
    shape: str | None  # None: no class fits strictly
    best_fit: str | None  # the best-fitting class, even if not accepted
    iou: float
    boundary_f: float
    position: str | None


def _nearest(rgb: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    names = list(palette)
    d = [np.sum((rgb - np.array(palette[n], np.float32)) ** 2) for n in names]
    return names[int(np.argmin(d))]


def _templates(shape: str, cx: np.ndarray, cy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Binary ideal masks for K parameter sets -> (K, SIZE, SIZE) bool (pixel-centre test)."""
    x = _XS[None] - cx[:, None, None]
    y = _YS[None] - cy[:, None, None]
    r = r[:, None, None]
    if shape == "circle":
        return x * x + y * y <= r * r
    if shape == "square":
        h = SQUARE_HALF * r
        return (np.abs(x) <= h) & (np.abs(y) <= h)
    if shape == "triangle":
        big_r = TRIANGLE_CIRCUM * r
        half_w = big_r * np.sqrt(3) / 2
        half_h = 0.75 * big_r
        # apex (0, -half_h), base corners (+-half_w, +half_h); inside = below both slanted edges
        slope = half_w / (2 * half_h)  # |x| grows by this per unit y
        return (y <= half_h) & (np.abs(x) <= (y + half_h) * slope)
    raise ValueError(shape)


def _initial_params(shape: str, area: float, mx: float, my: float) -> tuple[float, float, float]:
    if shape == "circle":
        return mx, my, float(np.sqrt(area / np.pi))
    if shape == "square":
        return mx, my, float(np.sqrt(area) / 2 / SQUARE_HALF)
    big_r = float(np.sqrt(4 * area / (3 * np.sqrt(3))))
    return mx, my - 0.25 * big_r, big_r / TRIANGLE_CIRCUM  # centroid lies 0.25 R below bbox centre


def _boundary(mask: np.ndarray) -> np.ndarray:
    m = np.pad(mask, 1, mode="edge")
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask & ~inner


def _dilate(mask: np.ndarray) -> np.ndarray:
    m = np.pad(mask, 1)
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= m[dy : dy + SIZE, dx : dx + SIZE]
    return out


def boundary_f(mask: np.ndarray, ideal: np.ndarray) -> float:
    bm, bi = _boundary(mask), _boundary(ideal)
    if not bm.any() or not bi.any():
        return 0.0
    precision = float((bm & _dilate(bi)).sum() / bm.sum())
    recall = float((bi & _dilate(bm)).sum() / bi.sum())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def fit(mask: np.ndarray, shape: str) -> tuple[float, np.ndarray, tuple[float, float, float]]:
    """Best IoU of the ideal outline of `shape` against mask, the ideal mask and its (cx, cy, r)."""
    area = float(mask.sum())
    ys, xs = np.nonzero(mask)
    mx, my = float(xs.mean() + 0.5), float(ys.mean() + 0.5)
    cx0, cy0, r0 = _initial_params(shape, area, mx, my)
    dx, dy, sc = np.meshgrid(_SHIFTS, _SHIFTS, _SCALES, indexing="ij")
    cx = (cx0 + dx).ravel()
    cy = (cy0 + dy).ravel()
    r = (r0 * sc).ravel()
    ideal = _templates(shape, cx, cy, r)
    inter = (ideal & mask[None]).sum(axis=(1, 2))
    union = (ideal | mask[None]).sum(axis=(1, 2))
    iou = inter / np.maximum(union, 1)
    k = int(np.argmax(iou))
    return float(iou[k]), ideal[k], (float(cx[k]), float(cy[k]), float(r[k]))


def segment(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """-> (background rgb, shape mask, shape rgb or None)."""
    a = img.astype(np.float32)
    border = np.concatenate([a[:2].reshape(-1, 3), a[-2:].reshape(-1, 3), a[:, :2].reshape(-1, 3), a[:, -2:].reshape(-1, 3)])
    bg = np.median(border, axis=0)
    dist = np.linalg.norm(a - bg, axis=-1)
    far = dist > 40
    if far.sum() < MIN_PIXELS:
        return bg, np.zeros(dist.shape, bool), None
    core = dist >= 0.6 * np.percentile(dist[far], 90)
    fg = np.median(a[core], axis=0)
    axis = fg - bg
    t = ((a - bg) @ axis) / max(float(axis @ axis), 1e-6)
    mask = t >= 0.5
    return bg, mask, fg


def classify(img: np.ndarray) -> Verdict:
    bg, mask, fg = segment(img)
    background = _nearest(bg, BACKGROUNDS)
    if fg is None or mask.sum() < MIN_PIXELS:
        return Verdict(None, background, None, None, 0.0, 0.0, None)
    colour = _nearest(fg, COLOURS)
    fits = {s: fit(mask, s) for s in SHAPES}
    best = max(SHAPES, key=lambda s: fits[s][0])
    iou, ideal, (cx, cy, _) = fits[best]
    bf = boundary_f(mask, ideal)
    accepted = best if (iou >= MIN_IOU and bf >= MIN_BOUNDARY_F) else None
    names = list(POSITIONS)
    d = [(cx - POSITIONS[n][0]) ** 2 + (cy - POSITIONS[n][1]) ** 2 for n in names]
    position = names[int(np.argmin(d))]
    return Verdict(colour, background, accepted, best, iou, bf, position)
