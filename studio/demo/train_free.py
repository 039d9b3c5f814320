"""Demo base, stage 2: free wording and sizes. `python -m studio.demo.train_free`

Trains the transformer of a saved demo model further (its VAE is kept exactly) so that it reads
prompts the way people write them and draws at every trained size:

- captions drawn afresh at every step from studio.demo.captions: each part (colour, shape,
  place, background) left out at random, the place before or after the background, "centre" or
  "center", "a" or "an"; the eval's prompts are never drawn;
- aspect buckets: one canvas per step, 64x64 (half the steps), 80x48 and 48x80 (a quarter each);
  geometry scaled per canvas (studio.demo.dataset.positions);
- tokenizers that lowercase and drop punctuation, and the word "shape" (studio.demo.components):
  every first word keeps its token id and embedding, so the transformer's reading is unchanged;
- two segments as in the first recipe: main (noise shift 3) and detail (shift 1, from the EMA);
- `--keep-base`: where the base already draws the picture (64x64, a caption naming every part),
  the target is a frozen copy's own prediction, not the render (without it, two fine-tunes on the
  buckets broke the 64x64 outlines: docs/demo.md); `--sizes` picks the canvases.

Resumable: the state is saved to --work every --ckpt-every steps; the same command, run again,
goes on from there (delete --work to start over). The model is written to --out at the end.
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
from .captions import KEEP, all_captions, random_caption, template_caption
from .cases import HELD_OUT
from .dataset import SIZES, first_words, make_specs, render, token_words
from .grow import grow_transformer, new_block_parameters
from .trainkit import (CaptionTable, name_values, Clock, Resumable, Steps, cosine_lr, ema_update, encode_latents, image_ids, log,
                       command_line, noised, sample_packed, stage_times, with_phase)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BUCKET_WEIGHTS = {(64, 64): 0.5, (80, 48): 0.25, (48, 80): 0.25}
BUCKET_IMAGES = {(64, 64): 16000, (80, 48): 8000, (48, 80): 8000}


def extend_text(pipe, seed: int) -> list[str]:
    """Give the pipeline the current tokenizers (letters only, added words); new words get new
    random embedding rows in both frozen text encoders. Idempotent. -> the words added now."""
    probe = ["a red circle at the left on a blue background", "an orange triangle in the centre"]
    before = pipe.encode_prompt(prompt=probe, prompt_2=None, max_sequence_length=C.TEXT_LEN)
    clip_tok, t5_tok = C.build_clip_tokenizer(), C.build_t5_tokenizer()
    for word in first_words():
        if clip_tok(word).input_ids != pipe.tokenizer(word).input_ids or \
                t5_tok(word).input_ids != pipe.tokenizer_2(word).input_ids:
            raise ValueError(f"token id of {word!r} would change; the text encoders would misread it")
    added = [w for w in token_words() if pipe.tokenizer_2.convert_tokens_to_ids("\u2581" + w) in
             (None, pipe.tokenizer_2.unk_token_id)]
    gen = torch.Generator().manual_seed(seed)
    for encoder, tok in ((pipe.text_encoder, clip_tok), (pipe.text_encoder_2, t5_tok)):
        old = encoder.get_input_embeddings().weight.detach().clone()
        if len(tok) > old.shape[0]:
            encoder.resize_token_embeddings(len(tok), mean_resizing=False)
            with torch.no_grad():
                rows = torch.randn(len(tok) - old.shape[0], old.shape[1], generator=gen) * old.std()
                encoder.get_input_embeddings().weight.copy_(torch.cat([old, rows]))
    pipe.tokenizer, pipe.tokenizer_2 = clip_tok, t5_tok
    after = pipe.encode_prompt(prompt=probe, prompt_2=None, max_sequence_length=C.TEXT_LEN)
    if not (torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])):
        raise ValueError("the text embeddings of known prompts changed")
    return added


class Bucket:
    """One canvas size: its specs and their VAE latents."""

    def __init__(self, vae, size: tuple[int, int], n: int, seed: int) -> None:
        self.width, self.height = size
        self.specs = make_specs(n, seed, *size)
        images = np.stack([render(s) for s in self.specs])
        self.mean, self.std = encode_latents(vae, images)


def build_buckets(vae, counts: dict[tuple[int, int], int], seed: int) -> list[Bucket]:
    out = []
    for k, (size, n) in enumerate(counts.items()):
        t0 = time.time()
        out.append(Bucket(vae, size, n, seed + 100 * k))
        log(f"bucket {size[0]}x{size[1]}: {n} images, latents {tuple(out[-1].mean.shape[1:])} ({time.time() - t0:.0f}s)")
    return out


def names_every_part(spec, caption: str) -> bool:
    """Does `caption` name the spec's colour, shape, place and background (a caption like those the
    first demo model was trained on)? Colour and background names never coincide in one spec."""
    words = set(caption.split())
    places = {"centre", "center"} if spec.position == "centre" else {spec.position}
    return {spec.colour, spec.shape, spec.background} <= words and bool(places & words)


def train(pipe, ema, buckets, weights, table, args, work: Path, teacher=None) -> dict[str, float]:
    """-> wall and CPU seconds spent training, over every run of the command (resumed runs add up).
    With a `teacher` (a frozen copy of the base transformer), a 64x64 picture whose caption names
    every part (what the base was trained on) learns the teacher's prediction instead of the render:
    what the base draws stays; other canvases and captions that leave parts out are learned."""
    tr = pipe.transformer
    tr.train()
    params = [p for p in tr.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    state = Resumable(work, transformer=tr, ema=ema, opt=opt, gen=gen, rng=rng)
    start, extra = state.load()
    clock = Clock(extra)
    ids = [image_ids(pipe, b.mean.shape[2], b.mean.shape[3]) for b in buckets]
    txt_ids = torch.zeros(C.TEXT_LEN, 3)
    total = args.steps + args.detail_steps
    steps = Steps(opt, params, state, clock, start, total, args.ckpt_every)
    for step in range(start, total):
        detail = step >= args.steps
        if step == args.steps and args.detail_steps:
            log(f"detail segment: {args.detail_steps} steps from the EMA weights, LR {args.detail_lr}, "
                f"noise shift {args.detail_noise_shift}")
            tr.load_state_dict(ema.state_dict())
            opt.state.clear()
        local, seg_total = (step - args.steps, args.detail_steps) if detail else (step, args.steps)
        lr = cosine_lr(local, seg_total, args.detail_lr if detail else args.lr, warmup=200)
        for g in opt.param_groups:
            g["lr"] = lr
        b = int(rng.choice(len(buckets), p=weights))
        bucket = buckets[b]
        idx = torch.randint(0, len(bucket.specs), (args.batch,), generator=gen)
        x0 = sample_packed(pipe, bucket.mean[idx], bucket.std[idx], gen)
        caption = template_caption if args.captions == "template" else random_caption
        specs = [bucket.specs[i] for i in idx.tolist()]
        caps = [caption(sp, rng, args.keep) for sp in specs]
        seq, pooled = table.lookup(caps)
        xt, s, target = noised(x0, gen, args.detail_noise_shift if detail else args.noise_shift)
        kwargs = dict(hidden_states=xt, timestep=s, pooled_projections=pooled, encoder_hidden_states=seq,
                      txt_ids=txt_ids, img_ids=ids[b], return_dict=False)
        if teacher is not None and (bucket.width, bucket.height) == (64, 64):
            known = torch.tensor([names_every_part(sp, c) for sp, c in zip(specs, caps)])
            if known.any():
                with torch.no_grad():
                    target = torch.where(known[:, None, None], teacher(**kwargs)[0], target)
        pred = tr(**kwargs)[0]
        loss = F.mse_loss(pred, target)
        steps.optimise(loss)
        ema_update(ema, tr, local, args.ema)
        steps.done(step, loss, lr)
    times = steps.finish()
    tr.eval()
    return times


def quick_check(pipe, ema, seeds: int = 2) -> dict:
    """Free prompts and the template at every size, through the in-memory EMA model."""
    from .family_eval import score_free, score_sizes

    model = copy.deepcopy(pipe)
    model.transformer.load_state_dict(ema.state_dict())
    meta = {"default_steps": 8, "default_guidance": 0.0, "max_sequence_length": C.TEXT_LEN}
    return {"free": round(score_free(model, meta, list(range(seeds)))["score"], 3),
            "sizes": round(score_sizes(model, meta, list(range(seeds)), [tuple(s) for s in SIZES])["score"], 3)}


def _keep(text: str) -> dict[str, float]:
    return name_values(text, KEEP, "--keep")


def _bucket_weights(text: str) -> dict[tuple[int, int], float]:
    """--bucket-weights 64x64=0.7,80x48=0.15: each named canvas's share of the steps (the rest keep
    BUCKET_WEIGHTS'; the shares are normalised over the canvases trained)."""
    given = name_values(text, {f"{w}x{h}" for w, h in BUCKET_WEIGHTS}, "--bucket-weights")
    if any(v <= 0 for v in given.values()):
        raise argparse.ArgumentTypeError("--bucket-weights: every weight must be above 0")
    return {**BUCKET_WEIGHTS, **{tuple(int(n) for n in k.split("x")): v for k, v in given.items()}}


def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in filter(None, text.split(",")):
        w, _, h = item.partition("x")
        if not (w.isdigit() and h.isdigit()) or (int(w), int(h)) not in BUCKET_WEIGHTS:
            raise argparse.ArgumentTypeError(f"--sizes: {item!r} is not one of "
                                             f"{', '.join(f'{a}x{b}' for a, b in BUCKET_WEIGHTS)}")
        out.append((int(w), int(h)))
    return out


def main(argv: list[str] | None = None) -> dict:
    from diffusers import FluxPipeline, FluxTransformer2DModel

    from .saving import fp16_check, save_pipeline

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, default=Path("models/demo"), help="the saved model to train further")
    ap.add_argument("--out", type=Path, default=Path("models/demo"))
    ap.add_argument("--work", type=Path, default=Path(".cache/demo-train/free"), help="resumable state")
    ap.add_argument("--steps", type=int, default=5500)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--noise-shift", type=float, default=C.SCHEDULER_SHIFT)
    ap.add_argument("--detail-steps", type=int, default=5500)
    ap.add_argument("--detail-lr", type=float, default=3e-4)
    ap.add_argument("--detail-noise-shift", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--ema", type=float, default=0.999, help="EMA decay (the EMA weights ship)")
    ap.add_argument("--phase", default="free wording and sizes", help="name of this phase in studio.json")
    ap.add_argument("--keep", type=_keep, default={}, metavar="PART=P,...",
                    help="how often captions keep a part, e.g. shape=0.95 (default: studio.demo.captions.KEEP)")
    ap.add_argument("--captions", choices=("free", "template"), default="free",
                    help="free: every wording (studio.demo.captions); template: the template's wording only (sizes "
                         "alone, for a base whose text encoders learn the wording: studio.demo.train_text)")
    ap.add_argument("--keep-base", action="store_true",
                    help="where the base already draws the picture (64x64, every part named) learn its own prediction "
                         "(a frozen copy), not the render: what the base draws stays, the rest is learned")
    ap.add_argument("--teacher", type=Path, default=None,
                    help="with --keep-base: the saved model whose transformer is the teacher (default: --base; e.g. the "
                         "first model, when --base is a fine-tune of it being polished)")
    ap.add_argument("--grow-single", type=int, default=0, metavar="N",
                    help="append N single blocks that start as the identity (studio.demo.grow): more capacity, "
                         "the same pictures at step 0, and every adapter's blocks keep their indices")
    ap.add_argument("--fresh-heads", type=int, default=0, metavar="N",
                    help="train a fresh transformer N heads of 32 wide (as many blocks as the base's) in place of the "
                         "base's; text encoders, VAE and tokenizers stay (6: 192 wide, stop 25)")
    ap.add_argument("--train-blocks", choices=("all", "new"), default="all",
                    help="new: train only the grown blocks (the trained ones stay exactly as they are)")
    ap.add_argument("--sizes", type=_sizes, default=list(BUCKET_WEIGHTS), metavar="WxH,...",
                    help="the canvases to train on (default: all of studio.demo.dataset.SIZES)")
    ap.add_argument("--bucket-weights", type=_bucket_weights, default=dict(BUCKET_WEIGHTS), metavar="WxH=W,...",
                    help="how often each canvas is drawn (default "
                         f"{','.join(f'{w}x{h}={v:g}' for (w, h), v in BUCKET_WEIGHTS.items())})")
    ap.add_argument("--images-scale", type=float, default=1.0, help="x the bucket image counts")
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--quick", action="store_true", help="a few steps (unless --steps) on a tiny dataset (tests)")
    args = ap.parse_args(argv)
    counts = {k: max(8, int(v * args.images_scale)) for k, v in BUCKET_IMAGES.items() if k in args.sizes}
    if args.quick:
        args.batch, args.ckpt_every = 4, 2
        args.steps = 3 if args.steps == ap.get_default("steps") else args.steps
        args.detail_steps = 2 if args.detail_steps == ap.get_default("detail_steps") else args.detail_steps
        counts = {k: 8 for k in counts}
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    setup = Clock({})

    base_meta = json.loads((args.base / "studio.json").read_text())
    pipe = FluxPipeline.from_pretrained(str(args.base), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    added = extend_text(pipe, args.seed)
    log(f"base {args.base}; words added: {added or 'none'}")
    buckets = build_buckets(pipe.vae, counts, args.seed)
    weights = np.array([args.bucket_weights[(b.width, b.height)] for b in buckets])
    table = CaptionTable(pipe, [] if args.quick else all_captions())
    log(f"{len(table.index)} captions encoded ({len(HELD_OUT)} eval prompts never drawn)")
    teacher = None
    if args.keep_base:
        teacher = copy.deepcopy(pipe.transformer) if args.teacher is None else \
            FluxTransformer2DModel.from_pretrained(args.teacher / "transformer", torch_dtype=torch.float32)
        teacher.eval().requires_grad_(False)
    elif args.teacher is not None:
        ap.error("--teacher needs --keep-base")
    if args.fresh_heads:
        if args.grow_single:
            ap.error("--fresh-heads and --grow-single: give the fresh transformer its blocks instead")
        old = pipe.transformer.config
        pipe.transformer = C.build_transformer(args.seed, old.num_layers, old.num_single_layers, args.fresh_heads)
        log(f"fresh transformer: {args.fresh_heads} heads of 32, {old.num_layers} + {old.num_single_layers} blocks, "
            f"{sum(p.numel() for p in pipe.transformer.parameters()) / 1e6:.2f}M parameters")
    if args.train_blocks == "new" and not args.grow_single:
        ap.error("--train-blocks new needs --grow-single N")
    first = len(pipe.transformer.single_transformer_blocks)
    grow_transformer(pipe.transformer, args.grow_single, args.seed)
    if args.train_blocks == "new":
        pipe.transformer.requires_grad_(False)
        for p in new_block_parameters(pipe.transformer, first):
            p.requires_grad_(True)
    ema = copy.deepcopy(pipe.transformer).eval().requires_grad_(False)
    before = setup.totals()  # this run's set-up
    times = stage_times(before, train(pipe, ema, buckets, weights / weights.sum(), table, args, args.work, teacher))
    wall = times["wall_time_s"]
    phase = {"stage": args.phase, "command": command_line("studio.demo.train_free", argv),
             "transformer_steps": args.steps, "lr": args.lr, "captions": args.captions, "detail_steps": args.detail_steps, "detail_lr": args.detail_lr,
             "detail_noise_shift": args.detail_noise_shift, "keep_base": args.keep_base,
             "teacher": str(args.teacher or args.base) if args.keep_base else None,
             "grow_single": args.grow_single, "fresh_heads": args.fresh_heads, "train_blocks": args.train_blocks, "batch": args.batch, "threads": args.threads,
             "buckets": {f"{w}x{h}": n for (w, h), n in counts.items()},
             "bucket_weights": {f"{w}x{h}": args.bucket_weights[(w, h)] for w, h in counts}, "seed": args.seed,
             **times}
    training = with_phase(base_meta.get("training", {}), phase)
    extra = {"sizes": [[w, h] for w, h in counts], "training": training}
    if not args.quick:
        phase["quick_check"] = quick_check(pipe, ema)
        log(f"quick check: {phase['quick_check']}")
    save_pipeline(pipe, ema, args.out, extra)
    extra["fp16_check"] = fp16_check(pipe, ema, args.out, n_prompts=4 if args.quick else 16)
    from .saving import write_studio_json

    write_studio_json(args.out, extra)
    log(f"saved {args.out}; fp16 check {extra['fp16_check']}; {wall / 60:.1f} min")
    return {"wall_time_s": wall}


if __name__ == "__main__":
    main()
