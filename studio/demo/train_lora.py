"""Demo LoRAs: `python -m studio.demo.train_lora --effect outline|big`.

- demo-outline: hollow outlines instead of filled shapes (at weight 1 a band 0.4x the shape's inradius,
  3-7 px at 64 px: thinner bands lose their colour in the demo VAE's latents);
- demo-big: shapes 1.5x larger (kept inside the canvas: a big shape at the left touches the edge).

A peft LoRA (rank 8) on the demo transformer's attention projections, feed-forward and single-block
MLPs, the base frozen, saved with `FluxPipeline.save_lora_weights` (diffusers keys, loads with
`load_lora_weights`), plus the safetensors metadata kohya's sd-scripts and ModelSpec write
(`ss_*`, `modelspec.*`: base model, title, trigger words, resolution, training figures).

The weight is a dial, not a switch: every step draws a weight w in [0.25, 1], scales the LoRA by
it (peft's `set_scale`, what `set_adapters` does) and trains toward the effect at strength w (a
band from the filled shape's inradius down to 0.4x of it; 1 + 0.5 w times larger), so 0.5 draws
halfway. demo-big is trained to compose with demo-outline (--compose): a third of its steps run
with the finished outline LoRA on at a random weight too, toward both effects.
Targets are rendered and VAE-encoded at every step, captions drawn freely (studio.demo.captions).
`--focus-steps N --focus-shapes triangle=3` then trains N more steps (a fresh cosine from --focus-lr)
drawing one shape more often: the shipped outline's triangles, whose thin bands broke (docs/demo.md).
`--band triangle=0.46` widens one shape's band at weight 1 (the shipped outline: triangles 0.46x).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import components as C
from .captions import all_captions, random_caption, template_caption
from .dataset import inradius, random_spec, render, scaled
from .trainkit import (CaptionTable, name_values, Clock, Resumable, Steps, cosine_lr, encode_latents, image_ids, log, noised,
                       command_line, sample_packed, stage_times)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
           "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2", "proj_mlp", "proj_out"]
BAND_RHO = 0.4  # outline width at weight 1, as a share of the shape's inradius
BIG = 0.5  # weight 1: 1.5x larger


@dataclass(frozen=True)
class Effect:
    name: str
    title: str
    text: str  # the description; "{band}" stands for the outline band it draws at weight 1
    bands: tuple[tuple[str, float], ...] = ()   # outline: band at weight 1 per shape (x inradius), else BAND_RHO

    @property
    def description(self) -> str:
        """The LoRA's description (its metadata), with the bands this effect was trained with."""
        said = ", ".join(f"{v:g}x for {k}s" for k, v in self.bands)
        return self.text.format(band=f"a band {BAND_RHO:g}x the inradius" + (f"; {said}" if said else ""))

    def spec_and_band(self, spec, w: float) -> tuple[object, float]:
        """The target at weight w: (spec to render, outline band width in px; 0 = filled)."""
        if self.name == "big":
            return scaled(spec, 1 + BIG * w), 0.0
        rho = inradius(spec.shape, spec.r)
        return spec, rho * (1 - w) + dict(self.bands).get(spec.shape, BAND_RHO) * rho * w


EFFECTS = {
    "outline": Effect("outline", "Demo outline", "Draws hollow outlines ({band}) instead of filled "
                                                 "shapes; weight 0.5 draws a band halfway to the filled shape."),
    "big": Effect("big", "Demo big", "Draws shapes 1.5x larger (kept inside the canvas); weight 0.5 draws 1.25x. "
                                     "Trained to combine with demo-outline (both at 1: big hollow shapes)."),
}


def target(effects: list[tuple[Effect, float]], spec) -> np.ndarray:
    band = 0.0
    for effect, w in effects:
        spec, b = effect.spec_and_band(spec, w)
        band = b or band
    return render(spec, outline=band) if band else render(spec)


def add_lora(transformer, name: str, rank: int, seed: int) -> None:
    from peft import LoraConfig

    torch.manual_seed(seed)
    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=TARGETS, init_lora_weights=True),
                            adapter_name=name)


def lora_params(transformer, name: str) -> list[torch.nn.Parameter]:
    return [p for n, p in transformer.named_parameters() if f".{name}." in n and "lora_" in n]


def train(pipe, effect: Effect, table, args, compose_with: str | None) -> dict[str, float]:
    tr = pipe.transformer
    names = [effect.name] + ([compose_with] if compose_with else [])
    params = lora_params(tr, effect.name)
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    gen, rng = torch.Generator().manual_seed(args.seed), np.random.default_rng(args.seed)
    lora_state = {n: p for n, p in tr.named_parameters() if f".{effect.name}." in n and "lora_" in n}
    holder = torch.nn.ParameterDict({k.replace(".", "_"): v for k, v in lora_state.items()})
    state = Resumable(args.work, lora=holder, opt=opt, gen=gen, rng=rng)
    start, extra = state.load()
    clock = Clock(extra)
    ids, txt_ids = image_ids(pipe, 16, 16), torch.zeros(C.TEXT_LEN, 3)
    focus = {k: v / sum(args.focus_shapes.values()) for k, v in args.focus_shapes.items()}
    total = args.steps + args.focus_steps
    steps = Steps(opt, params, state, clock, start, total, args.ckpt_every)
    for step in range(start, total):
        shares = focus if step >= args.steps else None
        lr = (cosine_lr(step - args.steps, args.focus_steps, args.focus_lr, warmup=50) if shares
              else cosine_lr(step, args.steps, args.lr, warmup=100))
        for g in opt.param_groups:
            g["lr"] = lr
        w = float(rng.uniform(0.25, 1.0))
        effects = [(effect, w)]
        weights = [w]
        if compose_with:
            u = float(rng.uniform(0.25, 1.0)) if rng.random() < args.compose else 0.0
            effects.append((replace(EFFECTS[compose_with], bands=effect.bands), u))
            weights.append(u)
        tr.set_adapters(names, weights)
        for p in tr.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        specs = [replace(random_spec(rng), shape=str(rng.choice(list(shares), p=list(shares.values()))))
                 for _ in range(args.batch)] if shares else [random_spec(rng) for _ in range(args.batch)]
        images = np.stack([target([e for e in effects if e[1] > 0], s) for s in specs])
        x0 = sample_packed(pipe, *encode_latents(pipe.vae, images), gen)
        caption = template_caption if args.captions == "template" else random_caption
        seq, pooled = table.lookup([caption(s, rng) for s in specs])
        xt, s, target_v = noised(x0, gen, args.noise_shift)
        pred = tr(hidden_states=xt, timestep=s, pooled_projections=pooled, encoder_hidden_states=seq,
                  txt_ids=txt_ids, img_ids=ids, return_dict=False)[0]
        loss = F.mse_loss(pred, target_v)
        steps.optimise(loss)
        steps.done(step, loss, lr)
    times = steps.finish()
    return times


def metadata(effect: Effect, args, record: dict, base_meta: dict) -> dict[str, str]:
    """kohya sd-scripts (`ss_*`) and ModelSpec 1.0.1 (`modelspec.*`) keys; values are strings."""
    words = Counter(w for c in all_captions() for w in c.split())
    now = time.time()
    return {
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.architecture": "flux-1-schnell/lora",
        "modelspec.implementation": "diffusers",
        "modelspec.title": effect.title,
        "modelspec.description": effect.description,
        "modelspec.author": "studio demo family (python -m studio.demo.train_lora)",
        "modelspec.date": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)),
        "modelspec.resolution": "64x64",
        "modelspec.trigger_phrase": "",
        "modelspec.usage_hint": "No trigger word: on whenever loaded, for any demo prompt; the weight sets the strength.",
        "modelspec.tags": f"demo, {effect.name}",
        "modelspec.license": "same as the studio",
        "ss_output_name": f"demo-{effect.name}",
        "ss_base_model_version": "flux1",
        "ss_sd_model_name": "demo",
        "ss_network_module": "peft.lora (diffusers layout)",
        "ss_network_dim": str(args.rank),
        "ss_network_alpha": str(float(args.rank)),
        "ss_network_args": json.dumps({"target_modules": TARGETS}),
        "ss_resolution": "(64, 64)",
        "ss_steps": str(args.steps + args.focus_steps),
        "ss_max_train_steps": str(args.steps + args.focus_steps),
        "ss_learning_rate": str(args.lr),
        "ss_lr_scheduler": "cosine",
        "ss_optimizer": "torch.optim.AdamW(betas=(0.9, 0.99), weight_decay=0)",
        "ss_seed": str(args.seed),
        "ss_mixed_precision": "no",
        "ss_num_train_images": str((args.steps + args.focus_steps) * args.batch),
        "ss_tag_frequency": json.dumps({"demo-shapes": dict(words.most_common())}),
        "ss_training_comment": json.dumps(record),
        "ss_training_finished_at": str(now),
        "ss_base_model_name_or_path": base_meta.get("label", "demo"),
    }


def save(pipe, effect: Effect, out: Path, meta: dict[str, str]) -> None:
    from diffusers import FluxPipeline
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    layers = get_peft_model_state_dict(pipe.transformer, adapter_name=effect.name)
    tmp_dir = out.parent / f".{out.stem}.tmp"
    FluxPipeline.save_lora_weights(tmp_dir, transformer_lora_layers={k: v.half() for k, v in layers.items()},
                                   weight_name=out.name)
    from safetensors import safe_open

    with safe_open(tmp_dir / out.name, framework="pt") as f:
        written = dict(f.metadata() or {})
    tensors = load_file(tmp_dir / out.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, out.with_suffix(".tmp"), metadata={**written, **meta})
    os.replace(out.with_suffix(".tmp"), out)
    (tmp_dir / out.name).unlink()
    tmp_dir.rmdir()


def _shapes(text: str) -> dict[str, float]:
    from .dataset import SHAPES

    return name_values(text, SHAPES, "--focus-shapes", start=dict.fromkeys(SHAPES, 1.0))


def _bands(text: str) -> dict[str, float]:
    from .classify import HOLLOW_BELOW
    from .dataset import SHAPES

    # a band b x the inradius leaves a hole (1 - b)^2 of the shape: past this the judge sees it filled
    widest = 1 - (1 - HOLLOW_BELOW) ** 0.5
    bands = name_values(text, SHAPES, "--band", start={})
    if any(not 0 < v < widest for v in bands.values()):
        raise argparse.ArgumentTypeError(f"--band: a share of the inradius in (0, {widest:.2f}), got {bands}")
    return bands


def main(argv: list[str] | None = None) -> dict:
    from diffusers import FluxPipeline

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--effect", choices=sorted(EFFECTS), required=True)
    ap.add_argument("--base", type=Path, default=Path("models/demo"))
    ap.add_argument("--out", type=Path, help="default: models/loras/demo-<effect>.safetensors")
    ap.add_argument("--work", type=Path, help="default: .cache/demo-train/lora-<effect>")
    ap.add_argument("--compose-with", type=Path, help="a LoRA to train alongside (default for big: models/loras/"
                                                       "demo-outline.safetensors; 'none' for none)")
    ap.add_argument("--compose", type=float, default=1 / 3, help="share of steps with --compose-with on")
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--noise-shift", type=float, default=C.SCHEDULER_SHIFT)
    ap.add_argument("--focus-steps", type=int, default=0,
                    help="then this many steps (a fresh cosine from --focus-lr) that draw the shapes as --focus-shapes says")
    ap.add_argument("--focus-lr", type=float, default=3e-4)
    ap.add_argument("--focus-shapes", type=_shapes, default=_shapes(""), metavar="SHAPE=W,...",
                    help="how often each shape is drawn in the focus steps, relative to the others, e.g. triangle=3")
    ap.add_argument("--band", type=_bands, default={}, metavar="SHAPE=RHO,...",
                    help=f"outline band at weight 1 per shape, x its inradius (default {BAND_RHO} for every shape); "
                         "for big, the composed outline's")
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7171)
    ap.add_argument("--captions", choices=("free", "template"), default="free",
                    help="free: every wording (studio.demo.captions); template: the template's wording only, for a "
                         "base that reads only the template (the first demo model)")
    ap.add_argument("--quick", action="store_true", help="a few steps (unless --steps) on a tiny batch (tests)")
    args = ap.parse_args(argv)
    effect = replace(EFFECTS[args.effect], bands=tuple(sorted(args.band.items())))
    args.out = args.out or Path(f"models/loras/demo-{effect.name}.safetensors")
    args.work = args.work or Path(f".cache/demo-train/lora-{effect.name}")
    if args.compose_with is None and effect.name == "big":
        args.compose_with = args.out.parent / "demo-outline.safetensors"
    if args.compose_with is not None and str(args.compose_with) == "none":
        args.compose_with = None
    if args.quick:
        args.batch, args.ckpt_every = 4, 2
        args.steps = 3 if args.steps == ap.get_default("steps") else args.steps
    torch.set_num_threads(args.threads)
    setup = Clock({})
    base_meta = json.loads((args.base / "studio.json").read_text())
    pipe = FluxPipeline.from_pretrained(str(args.base), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    pipe.transformer.requires_grad_(False)
    compose_name = None
    if args.compose_with:
        compose_name = "outline"
        pipe.load_lora_weights(str(args.compose_with), adapter_name=compose_name)
    add_lora(pipe.transformer, effect.name, args.rank, args.seed)
    table = CaptionTable(pipe, [] if args.quick else all_captions())
    before = setup.totals()  # this run's set-up
    times = stage_times(before, train(pipe, effect, table, args, compose_name))
    wall = times["wall_time_s"]
    record = {"command": command_line("studio.demo.train_lora", argv),
              "steps": args.steps, "focus_steps": args.focus_steps, "focus_lr": args.focus_lr,
              "focus_shapes": args.focus_shapes, "band": args.band, "batch": args.batch, "lr": args.lr, "rank": args.rank,
              "threads": args.threads,
              "compose_with": str(args.compose_with) if args.compose_with else None, "captions": args.captions,
              "seed": args.seed,
              **times}
    save(pipe, effect, args.out, metadata(effect, args, record, base_meta))
    log(f"saved {args.out} ({args.out.stat().st_size / 1e3:.0f} kB), {wall / 60:.1f} min")
    return record


if __name__ == "__main__":
    main()
