"""Contact sheets for the demo family: a grid of pictures with row labels, column heads and a
green (right) or red (wrong) frame per picture; pictures are enlarged without smoothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

GREEN, RED, GREY = (40, 170, 60), (220, 40, 40), (200, 200, 200)


def contact_sheet(rows: Sequence[tuple[str, Sequence[np.ndarray], Sequence[bool | None]]], heads: Sequence[str],
                  path: Path, scale: int = 2, label_w: int = 300) -> None:
    """rows: (label, pictures, verdicts); a verdict None draws a grey frame (an input, not judged)."""
    cell_w = max(p.shape[1] for _, pics, _ in rows for p in pics) * scale
    cell_h = max(p.shape[0] for _, pics, _ in rows for p in pics) * scale
    pad, head_h = 5, 16
    n_cols = max(len(pics) for _, pics, _ in rows)
    sheet = Image.new("RGB", (label_w + n_cols * (cell_w + pad) + pad, head_h + len(rows) * (cell_h + pad) + pad),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, head in enumerate(heads):
        draw.text((label_w + pad + c * (cell_w + pad), 2), head, fill=(0, 0, 0))
    for r, (label, pics, verdicts) in enumerate(rows):
        y = head_h + pad + r * (cell_h + pad)
        draw.text((6, y + cell_h // 2 - 6), label, fill=(0, 0, 0))
        for c, (pic, ok) in enumerate(zip(pics, verdicts)):
            x = label_w + pad + c * (cell_w + pad)
            colour = GREY if ok is None else GREEN if ok else RED
            draw.rectangle([x - 2, y - 2, x + cell_w + 1, y + cell_h + 1], fill=colour)
            big = Image.fromarray(pic).resize((pic.shape[1] * scale, pic.shape[0] * scale), Image.Resampling.NEAREST)
            sheet.paste(big, (x, y))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
