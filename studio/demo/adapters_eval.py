"""Figures for the demo adapters, each loaded through plain diffusers, on cases from cases.py.

- control_follow: FluxControlNetPipeline.from_pipe(base, controlnet=...), scale 1: the picture's
  best-fitting shape is the map's, its filled mask overlaps the map scene's mask with IoU >= 0.8,
  its place is the map's, and its colour is the prompt's; prompts mostly contradict the map;
- control_zero: the same pipeline at scale 0 vs FluxPipeline, same noise: identical pixels;
- ip_colour: load_ip_adapter, scale 1, colour-free prompts: the picture has the reference's colour;
- ip_zero: adapter loaded at scale 0 vs the pipeline before loading: identical pixels;
- lora_outline / lora_big / lora_mix: load_lora_weights + set_adapters at 1 (outline), 1 (big),
  1 and 1 (mix): hollow, 1.3-1.7x the base picture's size (same prompt and seed), or both; always
  with the prompt's shape (best fit) and colour;
- lora_zero: both LoRAs at weight 0 vs the pipeline before loading: identical pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .cases import control_cases, ip_cases, lora_cases
from .classify import classify, mask_iou, outline_mask, segment
from .dataset import render
from .family_eval import run
from .maps import CONTROL_MODES, control_map

IOU_MIN = 0.8
BIG_RANGE = (1.3, 1.7)


def scene_mask(spec) -> np.ndarray:
    return segment(render(spec))[1]


def picture_mask(img: np.ndarray) -> np.ndarray:
    return outline_mask(segment(img)[1])[0]


def follows_map(img: np.ndarray, case) -> tuple[bool, float]:
    v = classify(img)
    iou = mask_iou(picture_mask(img), scene_mask(case.spec))
    ok = v.best_fit == case.spec.shape and v.position == case.spec.position and v.colour == case.colour and iou >= IOU_MIN
    return ok, iou


def score_control(base, controlnet, meta: dict, seeds: Sequence[int], zero_cases: int = 8) -> dict:
    from diffusers import FluxControlNetPipeline

    pipe = FluxControlNetPipeline.from_pipe(base, controlnet=controlnet)
    pipe.set_progress_bar_config(disable=True)
    ok, ious, rows, same = [], [], [], []
    for i, case in enumerate(control_cases()):
        cmap = control_map(case.spec, case.mode)
        kw = {"control_image": Image.fromarray(cmap), "control_mode": CONTROL_MODES[case.mode]}
        imgs = run(pipe, [case.prompt], seeds, meta=meta, controlnet_conditioning_scale=1.0, **kw)[0]
        verdicts = [follows_map(im, case) for im in imgs]
        ok += [v for v, _ in verdicts]
        ious += [iou for _, iou in verdicts]
        rows.append((case, cmap, imgs, [v for v, _ in verdicts]))
        if i < zero_cases:
            plain = run(base, [case.prompt], seeds, meta=meta)[0]
            zero = run(pipe, [case.prompt], seeds, meta=meta, controlnet_conditioning_scale=0.0, **kw)[0]
            same += [np.array_equal(a, b) for a, b in zip(plain, zero)]
    by_kind = {}
    for case, _, _, oks in rows:
        by_kind.setdefault(case.kind, []).extend(oks)
    return {"control_follow": float(np.mean(ok)), "control_zero": float(np.mean(same)),
            "median_iou": float(np.median(ious)), "by_kind": {k: float(np.mean(v)) for k, v in by_kind.items()},
            "rows": rows}


def load_ip(pipe, folder: Path) -> None:
    pipe.load_ip_adapter(str(folder), weight_name="ip_adapter.safetensors",
                         image_encoder_pretrained_model_name_or_path=str(Path(folder) / "image_encoder"),
                         image_encoder_dtype=torch.float32)


def score_ip(base, folder: Path, meta: dict, seeds: Sequence[int], zero_cases: int = 8) -> dict:
    """Loads the adapter into `base` and unloads it at the end."""
    cases = ip_cases()
    plain = [run(base, [c.prompt], seeds, meta=meta)[0] for c in cases[:zero_cases]]
    load_ip(base, folder)
    try:
        ok, named, rows, same = [], [], [], []
        base.set_ip_adapter_scale(1.0)
        for case in cases:
            ref = render(case.reference)
            imgs = run(base, [case.prompt], seeds, meta=meta, ip_adapter_image=Image.fromarray(ref))[0]
            vs = [classify(im) for im in imgs]
            ok += [v.colour == case.reference.colour for v in vs]
            named += [v.shape is not None and all(getattr(v, k) == t for k, t in case.truth.items()) for v in vs]
            rows.append((case, ref, imgs, [v.colour == case.reference.colour for v in vs]))
        base.set_ip_adapter_scale(0.0)
        for case, before in zip(cases, plain):
            after = run(base, [case.prompt], seeds, meta=meta, ip_adapter_image=Image.fromarray(render(case.reference)))[0]
            same += [np.array_equal(a, b) for a, b in zip(before, after)]
    finally:
        base.unload_ip_adapter()
    return {"ip_colour": float(np.mean(ok)), "ip_zero": float(np.mean(same)), "ip_prompt_parts": float(np.mean(named)),
            "rows": rows}


LORA_SETTINGS = {"base": (0.0, 0.0), "outline 0.5": (0.5, 0.0), "outline 1": (1.0, 0.0), "big 0.5": (0.0, 0.5),
                 "big 1": (0.0, 1.0), "both 1": (1.0, 1.0)}


def score_loras(base, outline: Path, big: Path, meta: dict, seeds: Sequence[int]) -> dict:
    """Loads both LoRAs into `base` (adapters "outline", "big") and unloads them at the end."""
    cases = lora_cases()
    prompts = [c.prompt for c in cases]
    plain = run(base, prompts, seeds, meta=meta)
    base.load_lora_weights(str(outline), adapter_name="outline")
    base.load_lora_weights(str(big), adapter_name="big")
    try:
        images = {}
        for name, weights in LORA_SETTINGS.items():
            base.set_adapters(["outline", "big"], list(weights))
            images[name] = run(base, prompts, seeds, meta=meta)
    finally:
        base.unload_lora_weights()
    verdicts = {name: [[classify(im) for im in row] for row in imgs] for name, imgs in images.items()}
    ref = verdicts["base"]

    def rate(name: str, hollow: bool, big_: bool) -> float:
        ok = []
        for c, row, row0 in zip(cases, verdicts[name], ref):
            for v, v0 in zip(row, row0):
                ratio = v.radius / v0.radius if v0.radius else 0.0
                good = v.best_fit == c.truth["shape"] and v.colour == c.truth["colour"] and v.hollow == hollow
                if big_:
                    good = good and BIG_RANGE[0] <= ratio <= BIG_RANGE[1]
                else:
                    good = good and ratio < BIG_RANGE[0]
                ok.append(good)
        return float(np.mean(ok))

    def median(name: str, key) -> float:
        return float(np.median([key(v, v0) for row, row0 in zip(verdicts[name], ref) for v, v0 in zip(row, row0)]))

    fill = {n: median(n, lambda v, v0: v.fill) for n in LORA_SETTINGS}
    size = {n: median(n, lambda v, v0: v.radius / v0.radius if v0.radius else 0.0) for n in LORA_SETTINGS}
    zero = float(np.mean([np.array_equal(a, b) for r0, r1 in zip(plain, images["base"]) for a, b in zip(r0, r1)]))
    return {"lora_outline": rate("outline 1", True, False), "lora_big": rate("big 1", False, True),
            "lora_mix": rate("both 1", True, True), "lora_zero": zero, "median_fill": fill, "median_size": size,
            "images": images, "cases": cases}
