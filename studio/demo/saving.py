"""How every demo training stage writes its model: a plain FluxPipeline folder (fp16 weights,
published atomically), its studio.json, and the fp16 check (the saved folder draws what the
float32 model in memory drew)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from . import components as C
from .captions import PROMPT_TEMPLATE
from .dataset import SIZE, vocabulary
from .trainkit import fix_tokenizer_classes, publish


def studio_json(extra: dict) -> dict:
    return {
        "name": "demo",
        "family": "flux-schnell",
        "label": "Demo (tiny FLUX, shapes) - built in, CPU",
        "default_steps": 8,
        "default_guidance": 0.0,
        "max_sequence_length": C.TEXT_LEN,
        "width": SIZE,
        "height": SIZE,
        "display_scale": 4,
        "scheduler_shift": C.SCHEDULER_SHIFT,
        "sizes": [[SIZE, SIZE]],
        "vocabulary": vocabulary(),
        "prompt_template": PROMPT_TEMPLATE,
        "example_prompts": [
            "a red circle at the left on a blue background",
            "a yellow triangle in the centre on a black background",
            "a white square at the top on a green background",
        ],
        **extra,
    }


def write_studio_json(folder: Path, extra: dict) -> None:
    (folder / "studio.json").write_text(json.dumps(studio_json(extra), indent=2) + "\n")


def save_pipeline(pipe, ema, out: Path, extra: dict, fp16: bool = True) -> None:
    """Write a plain FluxPipeline folder atomically (tmp dir + rename)."""
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shipped = copy.deepcopy(pipe)
    shipped.transformer.load_state_dict(ema.state_dict())
    if fp16:
        # The diffusers parts load back as float32 by default; the transformers text encoders
        # would load as float16 and clash, so they stay float32 (they are ~0.3 MB anyway).
        shipped.transformer.to(torch.float16)
        shipped.vae.to(torch.float16)
    shipped.save_pretrained(tmp)
    for config in tmp.glob("*/config.json"):  # save_pretrained records where it was loaded from
        data = json.loads(config.read_text())
        if data.pop("_name_or_path", None) is not None:
            config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    fix_tokenizer_classes(tmp)
    write_studio_json(tmp, extra)
    keep = out / "README.md"
    if keep.exists():
        shutil.copy(keep, tmp / "README.md")
    publish(tmp, out)


def fp16_check(pipe, ema, out: Path, n_prompts: int) -> dict:
    """Same prompts and seeds through the in-memory float32 model and the saved folder."""
    from diffusers import FluxPipeline

    from .classify import classify
    from .dataset import eval_prompts
    from .eval import generate

    meta = json.loads((out / "studio.json").read_text())
    ref = copy.deepcopy(pipe)
    ref.transformer.load_state_dict(ema.state_dict())
    loaded = FluxPipeline.from_pretrained(out)  # plain load, as the studio does
    loaded.set_progress_bar_config(disable=True)
    prompts = [p for p, _ in eval_prompts()][:: max(1, 30 // n_prompts)][:n_prompts]
    a = generate(ref, meta, prompts, [0, 1]).astype(np.int16)
    b = generate(loaded, meta, prompts, [0, 1]).astype(np.int16)
    va = [classify(x.astype(np.uint8)) for x in a.reshape(-1, *a.shape[2:])]
    vb = [classify(x.astype(np.uint8)) for x in b.reshape(-1, *b.shape[2:])]
    same = sum((x.shape, x.colour, x.background, x.position) == (y.shape, y.colour, y.background, y.position) for x, y in zip(va, vb))
    return {
        "images": len(va),
        "max_abs_pixel_diff": int(np.abs(a - b).max()),
        "mean_abs_pixel_diff": round(float(np.abs(a - b).mean()), 3),
        "same_verdicts": same,
    }
