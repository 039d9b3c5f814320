"""Demo ControlNet: a FLUX union ControlNet (canny, depth) for the demo model.

`python -m studio.demo.train_controlnet [--base models/demo] [--out models/controlnet/demo-union]`

A `FluxControlNetModel` in the InstantX / Shakker-Labs Union layout (`num_mode` 10, control
modes numbered as theirs: canny 0, depth 2; the control picture VAE-encoded and packed by the
pipeline), made from the demo transformer with `from_transformer` (its double blocks and
--single-blocks single blocks copied), then trained with the base frozen:

- the control map decides the outline and the place, the prompt the colours: every target is the
  map's own scene drawn in the caption's colour and background; the caption's shape and place
  contradict the map half the time, agree a quarter, and are left out a quarter;
- maps are made from the dataset (studio.demo.maps: Canny edges of the picture; a near/far image,
  near bright), each mode half the time; latents are sampled from the VAE posterior, as the
  pipeline does with the call's generator;
- the output layers start at zero (as ControlNets do); the control input layer starts small but
  not zero, so the net feels the map from the first step.

Resumable (--work); the EMA weights are saved in float16 (they load as float32).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import components as C
from .captions import Parts, all_captions, compose
from .cases import HELD_OUT
from .dataset import POSITIONS, SHAPES, make_specs, render
from .maps import CONTROL_MODES, TRAINED_MODES, control_map
from .trainkit import (CaptionTable, Clock, Resumable, Steps, cosine_lr, ema_update, encode_latents, folder_bytes,
                       command_line, image_ids, log, noised, publish, sample_packed, stage_times)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

NUM_MODES = 10  # as the FLUX union nets


def build_controlnet(transformer, single_blocks: int, seed: int):
    """A union FluxControlNetModel from the demo transformer (its blocks copied)."""
    from diffusers import FluxControlNetModel

    torch.manual_seed(seed)
    tc = transformer.config
    plain = FluxControlNetModel.from_transformer(
        transformer, num_layers=tc.num_layers, num_single_layers=single_blocks,
        attention_head_dim=tc.attention_head_dim, num_attention_heads=tc.num_attention_heads)
    cfg = {k: v for k, v in plain.config.items() if not k.startswith("_") and k != "out_channels"}
    # (the "_use_default_values" key would undo num_mode; out_channels is the transformer's only)
    net = FluxControlNetModel.from_config({**cfg, "num_mode": NUM_MODES})
    missing, unexpected = net.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("controlnet_mode_embedder") for k in missing), (missing, unexpected)
    with torch.no_grad():
        torch.nn.init.normal_(net.controlnet_mode_embedder.weight, std=0.02)
        layer = net.controlnet_x_embedder
        torch.nn.init.normal_(layer.weight, std=0.02)
        layer.bias.zero_()
    return net


def control_caption(spec, rng: np.random.Generator) -> tuple[str, str]:
    """-> (caption, kind). Colour and background are the picture's (each left out at times); the
    shape and place contradict the map (1/2), agree (1/4) or are left out (1/4)."""
    u = rng.random()
    kind = "conflict" if u < 0.5 else "agree" if u < 0.75 else "silent"
    shape, place = spec.shape, spec.position
    if kind == "conflict":
        if rng.random() < 0.7:
            shape = [s for s in SHAPES if s != spec.shape][rng.integers(2)]
        if rng.random() < 0.7 or shape == spec.shape:
            place = [p for p in POSITIONS if p != spec.position][rng.integers(4)]
    elif kind == "silent":
        shape = place = None
    colour = spec.colour if rng.random() < 0.9 else None
    background = spec.background if rng.random() < 0.6 else None
    last, phrase, wrong = rng.random() < 0.5, int(rng.integers(2)), rng.random() < 0.1
    text = compose(Parts(colour, shape, place, background), place_last=last, phrase=phrase, wrong_article=wrong)
    if text in HELD_OUT:
        text = compose(Parts(colour, shape, place, background), place_last=not last, phrase=phrase, wrong_article=not wrong)
    if text in HELD_OUT:
        text = compose(Parts(spec.colour, shape, place, spec.background), place_last=last, phrase=phrase)
    return text, kind


class ControlData:
    """Scenes at 64x64: picture latents and, per trained mode, map latents."""

    def __init__(self, vae, n: int, seed: int) -> None:
        self.specs = make_specs(n, seed)
        t0 = time.time()
        self.image = encode_latents(vae, np.stack([render(s) for s in self.specs]))
        self.maps = {m: encode_latents(vae, np.stack([control_map(s, m) for s in self.specs])) for m in TRAINED_MODES}
        log(f"{n} scenes, pictures and {len(TRAINED_MODES)} map kinds encoded ({time.time() - t0:.0f}s)")


def train(pipe, net, ema, data: ControlData, table, args) -> dict[str, float]:
    tr = pipe.transformer.requires_grad_(False).eval()
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    gen, rng = torch.Generator().manual_seed(args.seed), np.random.default_rng(args.seed)
    state = Resumable(args.work, controlnet=net, ema=ema, opt=opt, gen=gen, rng=rng)
    start, extra = state.load()
    clock = Clock(extra)
    ids, txt_ids = image_ids(pipe, 16, 16), torch.zeros(C.TEXT_LEN, 3)
    steps = Steps(opt, net.parameters(), state, clock, start, args.steps, args.ckpt_every)
    for step in range(start, args.steps):
        lr = cosine_lr(step, args.steps, args.lr, warmup=200)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, len(data.specs), (args.batch,), generator=gen)
        modes = [TRAINED_MODES[int(rng.integers(len(TRAINED_MODES)))] for _ in range(args.batch)]
        x0 = sample_packed(pipe, *[t[idx] for t in data.image], gen)
        cmean = torch.stack([data.maps[m][0][i] for m, i in zip(modes, idx.tolist())])
        cstd = torch.stack([data.maps[m][1][i] for m, i in zip(modes, idx.tolist())])
        cond = sample_packed(pipe, cmean, cstd, gen)
        seq, pooled = table.lookup([control_caption(data.specs[i], rng)[0] for i in idx.tolist()])
        mode_ids = torch.tensor([[CONTROL_MODES[m]] for m in modes])
        xt, s, target = noised(x0, gen, args.noise_shift)
        blocks, singles = net(hidden_states=xt, controlnet_cond=cond, controlnet_mode=mode_ids, conditioning_scale=1.0,
                              timestep=s, pooled_projections=pooled, encoder_hidden_states=seq, txt_ids=txt_ids,
                              img_ids=ids, return_dict=False)
        pred = tr(hidden_states=xt, timestep=s, pooled_projections=pooled, encoder_hidden_states=seq,
                  controlnet_block_samples=blocks, controlnet_single_block_samples=singles, txt_ids=txt_ids,
                  img_ids=ids, return_dict=False)[0]
        loss = F.mse_loss(pred, target)
        steps.optimise(loss)
        ema_update(ema, net, step, args.ema)
        steps.done(step, loss, lr)
    times = steps.finish()
    return times


def save(ema, out: Path, record: dict) -> None:
    tmp = out.with_name(out.name + ".tmp")
    shipped = copy.deepcopy(ema).to(torch.float16)
    shipped.save_pretrained(tmp)
    meta = {"name": out.name, "kind": "controlnet", "family": "flux-schnell", "base_model": "demo",
            "label": "Demo union ControlNet (canny, depth)", "control_modes": {m: CONTROL_MODES[m] for m in TRAINED_MODES},
            "sizes": [[64, 64]], "training": record}
    (tmp / "studio.json").write_text(json.dumps(meta, indent=2) + "\n")
    publish(tmp, out)


def main(argv: list[str] | None = None) -> dict:
    from diffusers import FluxPipeline

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, default=Path("models/demo"))
    ap.add_argument("--out", type=Path, default=Path("models/controlnet/demo-union"))
    ap.add_argument("--work", type=Path, default=Path(".cache/demo-train/controlnet"))
    ap.add_argument("--steps", type=int, default=7000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--scenes", type=int, default=8000)
    ap.add_argument("--single-blocks", type=int, default=2)
    ap.add_argument("--noise-shift", type=float, default=C.SCHEDULER_SHIFT)
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=5151)
    ap.add_argument("--quick", action="store_true", help="a few steps (unless --steps) on a tiny dataset (tests)")
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.scenes, args.ckpt_every = 4, 8, 2
        args.steps = 3 if args.steps == ap.get_default("steps") else args.steps
    torch.set_num_threads(args.threads)
    setup = Clock({})
    pipe = FluxPipeline.from_pretrained(str(args.base), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    net = build_controlnet(pipe.transformer, args.single_blocks, args.seed)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    log(f"controlnet {sum(p.numel() for p in net.parameters()) / 1e6:.2f}M params")
    data = ControlData(pipe.vae, args.scenes, args.seed)
    table = CaptionTable(pipe, [] if args.quick else all_captions())
    before = setup.totals()  # this run's set-up
    times = stage_times(before, train(pipe, net, ema, data, table, args))
    wall = times["wall_time_s"]
    record = {"command": command_line("studio.demo.train_controlnet", argv),
              "steps": args.steps, "batch": args.batch, "lr": args.lr, "scenes": args.scenes,
              "single_blocks": args.single_blocks,
              "transformer_single_blocks": len(pipe.transformer.single_transformer_blocks), "ema": args.ema, "threads": args.threads, "seed": args.seed,
              **times}
    save(ema, args.out, record)
    log(f"saved {args.out} ({folder_bytes(args.out) / 1e6:.2f} MB), {wall / 60:.1f} min")
    return record


if __name__ == "__main__":
    main()
