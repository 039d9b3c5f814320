"""The demo family's figures: `python -m studio.demo.eval --family`.

Every case is a prompt (and a control map, reference image or LoRA weight) the training never
saw, for several seeds, at 8 steps, judged in pixels by studio.demo.classify. The run ends with
one line:

    free=.. sizes=.. control_follow=.. control_zero=.. ip_colour=.. ip_zero=.. lora_outline=..
    lora_big=.. lora_mix=.. lora_zero=..

- free: studio.demo.captions.FREE_EVAL (parts left out, place after the background, "center",
  "a"/"an", "a red circle"): a picture is right when it shows one shape that passes the strict
  judge and every part the prompt names is right (a part left out may be anything);
- sizes: the template prompts at every size of studio.json "sizes" and every size the demo family
  is meant to draw (studio.demo.dataset.SIZES: 64x64, 80x48, 48x80), so that a model trained at
  64x64 only is not scored at 64x64 only: shape (strict), colour, background and place right;
- control_*, ip_*, lora_*: see studio.demo.adapters_eval.

Initial noise is made from the seed the way FluxPipeline makes it and handed to every pipeline
as `latents`, so that a ControlNet pipeline (which draws from the generator before the noise)
and the plain one start from the same noise: the *_zero figures compare pixels bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .captions import FREE_EVAL, Parts
from .classify import Verdict, classify
from .dataset import eval_prompts

STEPS = 8


def latents_for(pipe, seeds: Sequence[int], width: int, height: int) -> torch.Tensor:
    """Packed initial noise, one CPU Generator(seed) per image, exactly as FluxPipeline draws it."""
    ch = pipe.transformer.config.in_channels // 4
    h, w = 2 * (height // (pipe.vae_scale_factor * 2)), 2 * (width // (pipe.vae_scale_factor * 2))
    noise = torch.cat([torch.randn((1, ch, h, w), generator=torch.Generator().manual_seed(s)) for s in seeds])
    return pipe._pack_latents(noise, len(seeds), ch, h, w)


def run(pipe, prompts: Sequence[str], seeds: Sequence[int], width: int = 64, height: int = 64,
        meta: dict | None = None, **kwargs) -> np.ndarray:
    """-> uint8 (len(prompts), len(seeds), H, W, 3). Any pipeline; kwargs go to its call
    (control_image, ip_adapter_image, ...: one per prompt, repeated over the seeds)."""
    meta = meta or {}
    all_seeds = [s for _ in prompts for s in seeds]
    with torch.inference_mode():
        out = pipe(
            prompt=[p for p in prompts for _ in seeds],
            latents=latents_for(pipe, all_seeds, width, height),
            num_inference_steps=meta.get("default_steps", STEPS),
            guidance_scale=meta.get("default_guidance", 0.0),
            max_sequence_length=meta.get("max_sequence_length", 16),
            height=height,
            width=width,
            output_type="np",
            **kwargs,
        ).images
    imgs = (np.clip(out, 0, 1) * 255).round().astype(np.uint8)
    return imgs.reshape(len(prompts), len(seeds), *imgs.shape[1:])


def fully_right(v: Verdict, truth: dict[str, str]) -> bool:
    """One shape the strict judge accepts, a colour, and every named part right."""
    if v.shape is None or v.colour is None:
        return False
    return all(getattr(v, key) == value for key, value in truth.items())


def _chunks(items: Sequence, n: int):
    for i in range(0, len(items), n):
        yield items[i : i + n]


def score_cases(pipe, meta: dict, cases: Sequence[tuple[str, dict]], seeds: Sequence[int],
                width: int = 64, height: int = 64, batch: int = 32) -> dict:
    """-> {"score", "images", "verdicts", "ok"} for (prompt, truth) cases."""
    per_call = max(1, batch // len(seeds))
    images, ok, verdicts = [], [], []
    for chunk in _chunks(cases, per_call):
        imgs = run(pipe, [p for p, _ in chunk], seeds, width, height, meta)
        for (_, truth), row in zip(chunk, imgs):
            vs = [classify(im) for im in row]
            verdicts.append(vs)
            ok.append([fully_right(v, truth) for v in vs])
        images.append(imgs)
    return {"score": float(np.mean(ok)), "images": np.concatenate(images), "verdicts": verdicts, "ok": ok}


def score_free(pipe, meta: dict, seeds: Sequence[int]) -> dict:
    return score_cases(pipe, meta, [(p, parts.truth()) for p, parts in FREE_EVAL], seeds)


def score_sizes(pipe, meta: dict, seeds: Sequence[int], sizes: Sequence[tuple[int, int]]) -> dict:
    """The template prompts at every size; per size and overall (every size counts the same)."""
    cases = [(p, Parts(t["colour"], t["shape"], t["position"], t["background"]).truth()) for p, t in eval_prompts()]
    per = {f"{w}x{h}": score_cases(pipe, meta, cases, seeds, w, h) for w, h in sizes}
    return {"score": float(np.mean([r["score"] for r in per.values()])), "per_size": per}


# ----------------------------------------------------------------------------- the --family run


def line(fig: dict) -> str:
    keys = ("free", "sizes", "control_follow", "control_zero", "ip_colour", "ip_zero", "lora_outline", "lora_big",
            "lora_mix", "lora_zero")
    return " ".join(f"{k}={fig.get(k, float('nan')):.2f}" for k in keys)


def _label(text: str, width: int = 46) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def family(model: Path, controlnet: Path, ip_adapter: Path, loras: Path, seeds: Sequence[int],
           sheets: Path | None) -> str:
    """Every figure of the demo family; prints details and writes contact sheets; -> the line."""
    from diffusers import FluxControlNetModel

    from . import adapters_eval as A
    from .eval import load
    from ..models.notices import trained_sizes
    from .sheets import contact_sheet

    pipe, meta = load(model)
    fig: dict[str, float] = {}
    free = score_free(pipe, meta, seeds)
    fig["free"] = free["score"]
    from .dataset import SIZES

    sizes = score_sizes(pipe, meta, seeds, list(dict.fromkeys([*trained_sizes(meta), *(tuple(x) for x in SIZES)])))
    fig["sizes"] = sizes["score"]
    print(f"free wording: {fig['free']:.3f} ({len(FREE_EVAL)} prompts x {len(seeds)} seeds)")
    print("template at every trained size: " + "  ".join(f"{k} {v['score']:.3f}" for k, v in sizes["per_size"].items()))
    if sheets:
        rows = [(_label(p), list(free["images"][i]), free["ok"][i]) for i, (p, _) in enumerate(FREE_EVAL[:14])]
        contact_sheet(rows, [f"seed {s}" for s in seeds], sheets / "demo_family_free.png")
        per = list(sizes["per_size"].values())
        rows = [(_label(p), [r["images"][i][0] for r in per], [r["ok"][i][0] for r in per])
                for i, (p, _) in enumerate(eval_prompts()[::4])]
        contact_sheet(rows, list(sizes["per_size"]), sheets / "demo_family_sizes.png")
    if (controlnet / "config.json").is_file():
        c = A.score_control(pipe, FluxControlNetModel.from_pretrained(controlnet), meta, seeds)
        fig |= {k: c[k] for k in ("control_follow", "control_zero")}
        print(f"controlnet {controlnet}: follow {c['control_follow']:.3f} (median mask IoU {c['median_iou']:.3f}; "
              + ", ".join(f"{k} {v:.2f}" for k, v in c["by_kind"].items()) + f"), scale 0 identical {c['control_zero']:.2f}")
        if sheets:
            rows = [(_label(f"{case.prompt} [{case.mode}]"), [cmap, *imgs], [None, *oks])
                    for case, cmap, imgs, oks in c["rows"][:10]]
            contact_sheet(rows, ["map", *[f"seed {s}" for s in seeds]], sheets / "demo_family_controlnet.png")
    if (ip_adapter / "ip_adapter.safetensors").is_file():
        ip = A.score_ip(pipe, ip_adapter, meta, seeds)
        fig |= {k: ip[k] for k in ("ip_colour", "ip_zero")}
        print(f"ip-adapter {ip_adapter}: reference colour {ip['ip_colour']:.3f}, the prompt's own parts "
              f"{ip['ip_prompt_parts']:.3f}, scale 0 identical {ip['ip_zero']:.2f}")
        if sheets:
            rows = [(_label(case.prompt), [ref, *imgs], [None, *oks]) for case, ref, imgs, oks in ip["rows"][:10]]
            contact_sheet(rows, ["reference", *[f"seed {s}" for s in seeds]], sheets / "demo_family_ip_adapter.png")
    outline, big = loras / "demo-outline.safetensors", loras / "demo-big.safetensors"
    if outline.is_file() and big.is_file():
        lo = A.score_loras(pipe, outline, big, meta, seeds)
        fig |= {k: lo[k] for k in ("lora_outline", "lora_big", "lora_mix", "lora_zero")}
        print("LoRA medians (fill: drawn share of the outline's area; size: x the base picture): "
              + "  ".join(f"{n}: fill {lo['median_fill'][n]:.2f} size {lo['median_size'][n]:.2f}" for n in A.LORA_SETTINGS))
        if sheets:
            rows = [(_label(c.prompt), [lo["images"][n][i][0] for n in A.LORA_SETTINGS], [None] * len(A.LORA_SETTINGS))
                    for i, c in enumerate(lo["cases"][:8])]
            contact_sheet(rows, list(A.LORA_SETTINGS), sheets / "demo_family_loras.png")
    return line(fig)
