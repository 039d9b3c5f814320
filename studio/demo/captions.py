"""How people word demo prompts, and what the studio says about a prompt or a size.

The demo model reads one sentence with four optional parts, in either order at the end:

    [a|an] [<colour>] <shape|"shape"> [<place>] [on a <background> background] [<place>]

e.g. "a red circle", "a circle on a white background at the left", "an orange shape in the
center". A part that is left out may take any value in the picture. `random_caption` draws such
wordings for training; `FREE_EVAL` are prompts that training never draws (held out by
`random_caption`), for the eval. What the studio says about a prompt or a size: studio.models.notices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dataset import BACKGROUNDS, COLOURS, POSITION_PHRASES, SHAPES, ShapeSpec

PROMPT_TEMPLATE = ("[a|an] [<colour>] <circle|square|triangle|shape> [at the <left|right|top|bottom> | "
                   "in the <centre|center>] [on a <background> background] (place before or after the background)")

# How often training keeps each part of a caption (the rest of the time it is left out).
KEEP = {"colour": 0.8, "shape": 0.85, "place": 0.75, "background": 0.75}
PLACE_LAST = 0.5  # place after the background, when both are there
WRONG_ARTICLE = 0.15  # "a orange", "an red": people write it; the model should not care


@dataclass(frozen=True, slots=True)
class Parts:
    """What a prompt asks for; None = left out (any value is right)."""

    colour: str | None = None
    shape: str | None = None
    place: str | None = None
    background: str | None = None

    def truth(self) -> dict[str, str]:
        return {k: v for k, v in (("colour", self.colour), ("shape", self.shape), ("position", self.place),
                                  ("background", self.background)) if v is not None}


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def compose(parts: Parts, *, place_last: bool = False, phrase: int = 0, wrong_article: bool = False) -> str:
    """One prompt for `parts`; `phrase` picks the place wording ("in the centre"/"in the center")."""
    noun = parts.shape or "shape"
    head = f"{parts.colour} {noun}" if parts.colour else noun
    art = article(head)
    if wrong_article:
        art = "a" if art == "an" else "an"
    words = [f"{art} {head}"]
    place = None
    if parts.place:
        options = POSITION_PHRASES[parts.place]
        place = options[phrase % len(options)]
    background = f"on a {parts.background} background" if parts.background else None
    tail = [background, place] if place_last else [place, background]
    return " ".join(words + [t for t in tail if t])


def template(spec: ShapeSpec) -> str:
    """The README's template wording of a spec (every part, place before the background)."""
    return compose(Parts(spec.colour, spec.shape, spec.position, spec.background),
                   phrase=POSITION_PHRASES[spec.position].index(spec.phrase))


def random_parts(spec: ShapeSpec, rng: np.random.Generator, keep: dict[str, float] | None = None) -> Parts:
    keep = {**KEEP, **(keep or {})}
    pick = {k: rng.random() < p for k, p in keep.items()}
    return Parts(spec.colour if pick["colour"] else None, spec.shape if pick["shape"] else None,
                 spec.position if pick["place"] else None, spec.background if pick["background"] else None)


def random_caption(spec: ShapeSpec, rng: np.random.Generator, keep: dict[str, float] | None = None,
                   held_out: frozenset[str] | None = None) -> str:
    """A free wording of `spec` (parts left out at random), never one of `held_out` (default:
    every eval prompt, studio.demo.cases.HELD_OUT); the rng draws a fixed number of values per
    call, so datasets stay reproducible."""
    if held_out is None:
        from .cases import HELD_OUT as held_out
    parts = random_parts(spec, rng, keep)
    place_last, wrong, phrase = rng.random() < PLACE_LAST, rng.random() < WRONG_ARTICLE, int(rng.integers(2))
    text = compose(parts, place_last=place_last, phrase=phrase, wrong_article=wrong)
    if text in held_out:  # the same picture in other words: in full if it can be, else with less
        c, sh, p, b = spec.colour, spec.shape, spec.position, spec.background
        options = [template(spec)] + [
            compose(parts, place_last=last, phrase=ph, wrong_article=wrong)
            for parts in (Parts(c, sh, p, b), Parts(c, sh, None, b), Parts(c, sh, p, None), Parts(c, sh, None, None))
            for wrong in (False, True) for last in (False, True) for ph in (0, 1)]
        text = next(t for t in options if t not in held_out)
    return text


def template_caption(spec: ShapeSpec, rng: np.random.Generator, keep: dict[str, float] | None = None,
                     held_out: frozenset[str] | None = None) -> str:
    """The template wording (parts in the template's order, place first, the right article) of
    `spec`, parts left out only as `keep` says (default: every part kept): for a base that reads
    only the template (the first demo model), so an adapter learns its effect, not the wording.
    Never one of `held_out` (default: every eval prompt): then "center" for "centre", the place
    after the background, the other article, or in full."""
    if held_out is None:
        from .cases import HELD_OUT as held_out
    keep = keep or {}
    pick = {k: rng.random() < keep.get(k, 1.0) for k in ("colour", "shape", "place", "background")}
    parts = Parts(spec.colour if pick["colour"] else None, spec.shape if pick["shape"] else None,
                  spec.position if pick["place"] else None, spec.background if pick["background"] else None)
    for text in (compose(parts, phrase=POSITION_PHRASES[spec.position].index(spec.phrase)), compose(parts, phrase=1),
                 compose(parts), compose(parts, place_last=True), compose(parts, wrong_article=True), template(spec)):
        if text not in held_out:
            return text
    return random_caption(spec, rng, held_out=held_out)


def all_parts() -> list[Parts]:
    return [Parts(c, s, p, b) for c in (None, *COLOURS) for s in (None, *SHAPES)
            for p in (None, *POSITION_PHRASES) for b in (None, *BACKGROUNDS) if c is None or c != b]


def all_captions() -> list[str]:
    """Every wording `random_caption` can produce (and the held-out ones), sorted."""
    out = set()
    for parts in all_parts():
        for place_last in (False, True):
            for phrase in (0, 1):
                for wrong in (False, True):
                    out.add(compose(parts, place_last=place_last, phrase=phrase, wrong_article=wrong))
    return sorted(out)


def _free_eval() -> list[tuple[str, Parts]]:
    """Prompts for the eval that training never draws: each wording people use, a few times."""
    rng = np.random.default_rng(2024)
    colours, backgrounds, places = list(COLOURS), list(BACKGROUNDS), list(POSITION_PHRASES)
    kinds = [  # (keep colour, shape, place, background, place last, phrase, wrong article), times
        ((1, 1, 0, 1, 0, 0, 0), 8),  # no place: "a red circle on a white background"
        ((1, 1, 1, 1, 1, 0, 0), 8),  # place after the background
        ((1, 1, 0, 0, 0, 0, 0), 6),  # "a red circle"
        ((1, 1, 1, 0, 0, 1, 0), 5),  # no background ("center" where the place is the centre)
        ((0, 1, 1, 1, 0, 0, 0), 5),  # no colour
        ((1, 0, 1, 1, 1, 0, 0), 5),  # no shape: "a red shape ..."
        ((1, 1, 1, 1, 0, 1, 1), 5),  # "a orange", "an red", "center"
        ((0, 1, 0, 0, 0, 0, 0), 2),  # "a triangle"
    ]
    out: list[tuple[str, Parts]] = [("a red circle", Parts("red", "circle"))]  # the README's API example
    for (kc, ks, kp, kb, last, phrase, wrong), times in kinds:
        for _ in range(times):
            while True:
                b = backgrounds[rng.integers(len(backgrounds))] if kb else None
                c = [x for x in colours if x != b][rng.integers(len(colours) - (b in colours))] if kc else None
                s = SHAPES[rng.integers(len(SHAPES))] if ks else None
                p = places[rng.integers(len(places))] if kp else None
                parts = Parts(c, s, p, b)
                text = compose(parts, place_last=bool(last), phrase=phrase, wrong_article=bool(wrong))
                if text not in {t for t, _ in out}:
                    break
            out.append((text, parts))
    return out


FREE_EVAL: tuple[tuple[str, Parts], ...] = tuple(_free_eval())
FREE_EVAL_PROMPTS: frozenset[str] = frozenset(t for t, _ in FREE_EVAL)
