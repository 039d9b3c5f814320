"""Demo IP-Adapter: the reference picture's colour, where the prompt leaves the colour out.

`python -m studio.demo.train_ip_adapter [--base models/demo] [--out models/ip_adapter/demo]`

The diffusers FLUX IP-Adapter layout (as XLabs' FLUX IP-Adapter, converted): `ip_adapter.safetensors`
with `image_proj.proj.*` / `image_proj.norm.*` (4 image tokens) and, per double block i,
`ip_adapter.{i}.to_k_ip.*` / `.to_v_ip.*`, beside a small `CLIPVisionModelWithProjection` in
`image_encoder/` (32 px, 2 layers, 64 wide). It loads with

    pipe.load_ip_adapter("models/ip_adapter/demo", weight_name="ip_adapter.safetensors",
                         image_encoder_pretrained_model_name_or_path="models/ip_adapter/demo/image_encoder",
                         image_encoder_dtype=torch.float32)

Training (the base frozen): the initial adapter is saved and loaded through that very call, then
its image encoder, projection and to_k_ip / to_v_ip are trained in place. Captions leave the
colour out (85%) or name the reference's colour; the reference shows the target's colour on
another shape, place and background, preprocessed by the pipeline's own CLIPImageProcessor.
`to_v_ip` starts at zero, so the adapter starts as a no-op. Resumable (--work).

Then `--teacher-steps` more steps learn from the base itself instead of the picture: the target
is what the frozen transformer predicts, at the same noise, for the same scene with its colour
named in the prompt (the adapter off). The data target mixes the colour with everything else in
the picture (noise - x0); this one asks only for what the prompt would have said, so its few
steps go where the figure is lost: neighbouring hues (orange drawn red or yellow).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import components as C
from .captions import all_captions, random_caption, template_caption
from .dataset import COLOURS, make_specs, random_spec, render
from .trainkit import (CaptionTable, Clock, Resumable, Steps, cosine_lr, encode_latents, folder_bytes, image_ids, log,
                       command_line, noised, publish, sample_packed, stage_times)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WEIGHT_NAME = "ip_adapter.safetensors"
TOKENS = 4
ENCODER = {"image_size": 32, "patch_size": 8, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
           "num_attention_heads": 4, "projection_dim": 64}


def initial_adapter(pipe, folder: Path, seed: int) -> None:
    """Write an untrained adapter (random projection, to_v_ip zero) and a random encoder."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**ENCODER))
    encoder.save_pretrained(folder / "image_encoder")
    cross, inner = pipe.transformer.config.joint_attention_dim, pipe.transformer.inner_dim
    proj = torch.nn.Linear(ENCODER["projection_dim"], TOKENS * cross)
    tensors = {"image_proj.proj.weight": proj.weight.detach(), "image_proj.proj.bias": proj.bias.detach(),
               "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    for i in range(pipe.transformer.config.num_layers):
        k = torch.nn.Linear(cross, inner)
        tensors |= {f"ip_adapter.{i}.to_k_ip.weight": k.weight.detach(), f"ip_adapter.{i}.to_k_ip.bias": k.bias.detach(),
                    f"ip_adapter.{i}.to_v_ip.weight": torch.zeros(inner, cross),
                    f"ip_adapter.{i}.to_v_ip.bias": torch.zeros(inner)}
    save_file({k: v.contiguous() for k, v in tensors.items()}, folder / WEIGHT_NAME)


def load(pipe, folder: Path) -> None:
    pipe.load_ip_adapter(str(folder), weight_name=WEIGHT_NAME,
                         image_encoder_pretrained_model_name_or_path=str(folder / "image_encoder"),
                         image_encoder_dtype=torch.float32)


def ip_processors(transformer) -> list:
    """The IP-Adapter processors of the double blocks, in the loader's order (ip_adapter.{i})."""
    return [p for name, p in transformer.attn_processors.items() if not name.startswith("single_transformer_blocks")]


@contextlib.contextmanager
def ip_scale(transformer, scale: float):
    """Every IP-Adapter processor at `scale` inside the block (0.0: exactly the base)."""
    procs = ip_processors(transformer)
    saved = [p.scale for p in procs]
    for p in procs:
        p.scale = [scale] * len(p.scale)
    try:
        yield
    finally:
        for p, old in zip(procs, saved):
            p.scale = old


def trainable(pipe) -> list[torch.nn.Module]:
    return [pipe.image_encoder, pipe.transformer.encoder_hid_proj, *ip_processors(pipe.transformer)]


def state_tensors(pipe) -> dict[str, torch.Tensor]:
    """The adapter in the file's layout (the inverse of diffusers' FLUX IP-Adapter loader)."""
    proj = pipe.transformer.encoder_hid_proj.image_projection_layers[0]
    out = {"image_proj.proj.weight": proj.image_embeds.weight, "image_proj.proj.bias": proj.image_embeds.bias,
           "image_proj.norm.weight": proj.norm.weight, "image_proj.norm.bias": proj.norm.bias}
    for i, p in enumerate(ip_processors(pipe.transformer)):
        for name in ("to_k_ip", "to_v_ip"):
            layer = getattr(p, name)[0]
            out[f"ip_adapter.{i}.{name}.weight"], out[f"ip_adapter.{i}.{name}.bias"] = layer.weight, layer.bias
    return {k: v.detach().contiguous() for k, v in out.items()}


class IPData:
    """Targets (64x64 latents) and a pool of references per colour (CLIP pixel values)."""

    def __init__(self, pipe, n: int, n_refs: int, seed: int) -> None:
        self.specs = make_specs(n, seed)
        self.latents = encode_latents(pipe.vae, np.stack([render(s) for s in self.specs]))
        rng = np.random.default_rng(seed + 1)
        refs = [random_spec(rng) for _ in range(n_refs)]
        pixels = pipe.feature_extractor([np.array(render(s)) for s in refs], return_tensors="pt").pixel_values
        self.refs, self.pixels = refs, pixels
        self.by_colour = {c: [i for i, s in enumerate(refs) if s.colour == c] for c in COLOURS}

    def reference(self, spec, rng: np.random.Generator) -> int:
        """A reference of the same colour with another shape, place and background where possible."""
        pool = self.by_colour[spec.colour]
        for _ in range(8):
            j = pool[rng.integers(len(pool))]
            r = self.refs[j]
            if r.shape != spec.shape and r.position != spec.position and r.background != spec.background:
                return j
        return j


def train(pipe, data: IPData, table, args) -> dict[str, float]:
    tr = pipe.transformer.requires_grad_(False).eval()
    modules = trainable(pipe)
    for m in modules:
        m.requires_grad_(True).train()
    params = [p for m in modules for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    gen, rng = torch.Generator().manual_seed(args.seed), np.random.default_rng(args.seed)
    state = Resumable(args.work, encoder=pipe.image_encoder, proj=tr.encoder_hid_proj,
                      ip=torch.nn.ModuleList(ip_processors(tr)), opt=opt, gen=gen, rng=rng)
    start, extra = state.load()
    clock = Clock(extra)
    ids, txt_ids = image_ids(pipe, 16, 16), torch.zeros(C.TEXT_LEN, 3)
    total = args.steps + args.teacher_steps
    steps = Steps(opt, params, state, clock, start, total, args.ckpt_every)
    caption = template_caption if args.captions == "template" else random_caption

    def predict(xt, s, caps, emb):
        seq, pooled = table.lookup(caps)
        return tr(hidden_states=xt, timestep=s, pooled_projections=pooled, encoder_hidden_states=seq,
                  txt_ids=txt_ids, img_ids=ids, return_dict=False,
                  joint_attention_kwargs={"ip_adapter_image_embeds": [emb[:, None, :]]})[0]  # a fresh dict: popped

    for step in range(start, total):
        teacher = step >= args.steps
        lr = (cosine_lr(step - args.steps, args.teacher_steps, args.teacher_lr, warmup=100) if teacher
              else cosine_lr(step, args.steps, args.lr, warmup=100))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, len(data.specs), (args.batch,), generator=gen)
        specs = [data.specs[i] for i in idx.tolist()]
        refs = torch.tensor([data.reference(s, rng) for s in specs])
        caps = [caption(s, rng, keep={"colour": 0.15}) for s in specs]
        x0 = sample_packed(pipe, *[t[idx] for t in data.latents], gen)
        xt, s, target = noised(x0, gen, args.noise_shift)
        emb = pipe.image_encoder(data.pixels[refs]).image_embeds
        if teacher:  # the base, adapter off, told the colour: what the reference should add
            named = [template_caption(sp, rng) for sp in specs]  # the student's parts, and the colour
            with torch.no_grad(), ip_scale(tr, 0.0):
                target = predict(xt, s, named, emb.detach())
        loss = F.mse_loss(predict(xt, s, caps, emb), target)
        steps.optimise(loss)
        steps.done(step, loss, lr)
    times = steps.finish()
    for m in modules:
        m.eval().requires_grad_(False)
    return times


def save(pipe, out: Path, record: dict) -> None:
    from safetensors.torch import save_file

    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file({k: v.half() for k, v in state_tensors(pipe).items()}, tmp / WEIGHT_NAME,
              metadata={"format": "pt", "base_model": "demo", "tokens": str(TOKENS)})
    copy.deepcopy(pipe.image_encoder).half().save_pretrained(tmp / "image_encoder")
    meta = {"name": out.name, "kind": "ip_adapter", "family": "flux-schnell", "base_model": "demo",
            "label": "Demo IP-Adapter (reference colour)", "weight_name": WEIGHT_NAME,
            "image_encoder": "image_encoder", "image_encoder_dtype": "float32", "training": record}
    (tmp / "studio.json").write_text(json.dumps(meta, indent=2) + "\n")
    publish(tmp, out)


def main(argv: list[str] | None = None) -> dict:
    from diffusers import FluxPipeline

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, default=Path("models/demo"))
    ap.add_argument("--out", type=Path, default=Path("models/ip_adapter/demo"))
    ap.add_argument("--work", type=Path, default=Path(".cache/demo-train/ip_adapter"))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--scenes", type=int, default=6000)
    ap.add_argument("--references", type=int, default=3000)
    ap.add_argument("--teacher-steps", type=int, default=0,
                    help="then this many steps toward the base's own prediction with the colour named (adapter off)")
    ap.add_argument("--teacher-lr", type=float, default=3e-4)
    ap.add_argument("--noise-shift", type=float, default=C.SCHEDULER_SHIFT)
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=6161)
    ap.add_argument("--captions", choices=("free", "template"), default="free",
                    help="free: every wording, the colour mostly left out; template: the template's wording with "
                         "the colour mostly left out, for a base that reads only the template (the first demo model)")
    ap.add_argument("--quick", action="store_true", help="a few steps (unless --steps) on a tiny dataset (tests)")
    args = ap.parse_args(argv)
    if args.teacher_steps and args.captions != "template":
        ap.error("--teacher-steps needs --captions template (the teacher's prompt is the student's with the colour named)")
    if args.quick:
        args.batch, args.scenes, args.references, args.ckpt_every = 4, 8, 64, 2
        args.steps = 3 if args.steps == ap.get_default("steps") else args.steps
    torch.set_num_threads(args.threads)
    setup = Clock({})
    pipe = FluxPipeline.from_pretrained(str(args.base), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    init = args.work / "initial"
    if not (init / WEIGHT_NAME).is_file():
        initial_adapter(pipe, init, args.seed)
    load(pipe, init)
    data = IPData(pipe, args.scenes, args.references, args.seed)
    table = CaptionTable(pipe, [] if args.quick else all_captions())
    log(f"adapter {sum(p.numel() for m in trainable(pipe) for p in m.parameters()) / 1e6:.2f}M trainable params; "
        f"{args.scenes} scenes, {args.references} references")
    before = setup.totals()  # this run's set-up
    times = stage_times(before, train(pipe, data, table, args))
    wall = times["wall_time_s"]
    record = {"command": command_line("studio.demo.train_ip_adapter", argv),
              "steps": args.steps, "teacher_steps": args.teacher_steps, "teacher_lr": args.teacher_lr, "batch": args.batch, "lr": args.lr, "scenes": args.scenes,
              "references": args.references, "captions": args.captions, "threads": args.threads, "seed": args.seed,
              **times}
    save(pipe, args.out, record)
    log(f"saved {args.out} ({folder_bytes(args.out) / 1e6:.2f} MB), {wall / 60:.1f} min")
    return record


if __name__ == "__main__":
    main()
