"""Demo base, free wording: teach the text encoders, not the transformer. `python -m studio.demo.train_text`

The first demo model reads one wording, the template (`a red circle at the left on a blue
background`), through two small text encoders that were never trained: its transformer learned
to read their outputs. People write `a red circle`, `a circle on a white background at the left`,
`an red square in the center`. This stage fine-tunes the two text encoders (CLIP and T5) so that
every such wording gives (nearly) the embeddings the frozen, original encoders give for the
template sentence that says the same. The transformer, VAE, and every adapter trained on them
(demo ControlNet, IP-Adapter, LoRAs) are untouched, and a template prompt still reads as before.

A part a prompt leaves out may be anything in the picture; the template it is taught to mean
fills it in, the same way every time, as a user of any studio would expect a default:

- no place: `in the centre`;
- no background: `white` (`black` when the shape is white);
- no shape (`a red shape`): one fixed pick per prompt (a stable hash of what the prompt does
  name), so a prompt always means the same picture;
- no colour (`a circle`): the template without a colour (`--colour-free keep`, the default),
  which the demo IP-Adapter was trained on, so a reference picture decides the colour; or, with
  `--colour-free fill`, one fixed colour per prompt (the base alone then draws better, 0.88 vs
  0.79, but the IP-Adapter cannot overrule a colour the text states: docs/demo.md).

The transformer reads the T5 tokens as a set (FluxPipeline's txt_ids are all zero), so the loss
compares them as a set (`matched`): a wording need not put its tokens in the template's order.

The eval's prompts (studio.demo.cases.HELD_OUT) are never trained on. Resumable like every stage;
the model (the base's folders, with the new text encoders and tokenizers) is written to --out.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import zlib
from pathlib import Path

import torch

from . import components as C
from .captions import Parts, all_parts, compose
from .cases import HELD_OUT
from .dataset import COLOURS, SHAPES
from .trainkit import (Clock, Resumable, Steps, command_line, cosine_lr, log, refuse_second_pass, stage_times,
                       with_phase)

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _pick(options: list[str], key: str) -> str:
    return options[zlib.crc32(key.encode()) % len(options)]


def meaning(parts: Parts, colour_free: str = "keep") -> Parts:
    """Every part filled in: what a prompt naming `parts` is taught to mean (see the module doc);
    colour_free="keep" leaves a missing colour out (the template without a colour)."""
    key = f"{parts.colour}|{parts.shape}|{parts.place}|{parts.background}"
    shape = parts.shape or _pick(list(SHAPES), "shape:" + key)
    place = parts.place or "centre"
    colour = parts.colour
    background = parts.background
    if background is None:
        background = "black" if colour == "white" else "white"
    if colour is None and colour_free == "fill":
        colour = _pick([c for c in COLOURS if c != background], "colour:" + key)
    return Parts(colour, shape, place, background)


def pairs(held_out: frozenset[str] = HELD_OUT, colour_free: str = "keep") -> tuple[list[str], list[str]]:
    """(free wordings, the template each means): every wording studio.demo.captions can draw
    except the eval's, the template sentences included (each means itself)."""
    texts, targets = [], []
    seen = set()
    for parts in all_parts():
        target = compose(meaning(parts, colour_free))
        for place_last in (False, True):
            for phrase in (0, 1):
                for wrong in (False, True):
                    text = compose(parts, place_last=place_last, phrase=phrase, wrong_article=wrong)
                    if text in held_out or text in seen:
                        continue
                    seen.add(text)
                    texts.append(text)
                    targets.append(target)
    return texts, targets


def token_ids(pipe, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(CLIP ids, T5 ids) as FluxPipeline tokenizes a prompt."""
    kw = dict(padding="max_length", max_length=C.TEXT_LEN, truncation=True, return_tensors="pt")
    return pipe.tokenizer(texts, **kw).input_ids, pipe.tokenizer_2(texts, **kw).input_ids


def embed(clip, t5, clip_ids: torch.Tensor, t5_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(T5 sequence, CLIP pooled), the two embeddings FluxPipeline.encode_prompt hands the transformer."""
    pooled = clip(clip_ids, output_hidden_states=False).pooler_output
    return t5(t5_ids, output_hidden_states=False)[0], pooled


def matched(seq: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`target`'s tokens reordered, per row, to sit beside the nearest of `seq`'s (one to one,
    least total squared distance). FluxPipeline gives every text token the same position id
    (txt_ids are zeros), so the transformer reads the T5 tokens as a set: their order is free."""
    from scipy.optimize import linear_sum_assignment

    cost = torch.cdist(seq.detach(), target).pow(2).numpy()
    order = torch.stack([torch.as_tensor(linear_sum_assignment(c)[1]) for c in cost])
    return torch.gather(target, 1, order[..., None].expand_as(target))


def train(pipe, teacher, texts, targets, args, work: Path) -> tuple[dict[str, float], dict[str, float]]:
    """-> (wall and CPU seconds over every run, the final relative errors: free wordings, template sentences)."""
    clip_ids, t5_ids = token_ids(pipe, texts)
    uniq = sorted(set(targets))
    with torch.no_grad():
        parts = [embed(*teacher, *token_ids(pipe, uniq[i : i + 512])) for i in range(0, len(uniq), 512)]
    t_seq, t_pooled = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    where = {t: i for i, t in enumerate(uniq)}
    target_idx = torch.tensor([where[t] for t in targets])
    seq_var, pooled_var = t_seq.var().clamp_min(1e-8), t_pooled.var().clamp_min(1e-8)
    is_template = torch.tensor([a == b for a, b in zip(texts, targets)])
    log(f"{len(texts)} wordings, {len(uniq)} templates they mean, {int(is_template.sum())} of them as written")

    clip, t5 = pipe.text_encoder, pipe.text_encoder_2
    params = [p for m in (clip, t5) for p in m.parameters()]
    for m in (clip, t5):
        m.train().requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    state = Resumable(work, clip=clip, t5=t5, opt=opt, gen=gen)
    start, extra = state.load()
    clock = Clock(extra)
    steps = Steps(opt, params, state, clock, start, args.steps, args.ckpt_every)
    templates = torch.nonzero(is_template).flatten()

    def errors(idx: torch.Tensor) -> torch.Tensor:
        """Per wording: squared error of both embeddings, each relative to the targets' variance
        (the loss is their mean; the T5 tokens matched as a set unless --match position)."""
        seq, pooled = embed(clip, t5, clip_ids[idx], t5_ids[idx])
        j = target_idx[idx]
        want = matched(seq, t_seq[j]) if args.match == "set" else t_seq[j]
        return (seq - want).pow(2).mean((1, 2)) / seq_var + (pooled - t_pooled[j]).pow(2).mean(1) / pooled_var

    for step in range(start, args.steps):
        lr = cosine_lr(step, args.steps, args.lr, warmup=100)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, len(texts), (args.batch,), generator=gen)
        n_tpl = int(args.batch * args.template_share)
        idx[:n_tpl] = templates[torch.randint(0, len(templates), (n_tpl,), generator=gen)]
        loss = errors(idx).mean()
        steps.optimise(loss)
        steps.done(step, loss, lr)
    times = steps.finish()
    for m in (clip, t5):
        m.eval().requires_grad_(False)
    with torch.no_grad():
        err = torch.cat([errors(idx) for idx in torch.arange(len(texts)).split(1024)])
    error = {"error_free": round(float(err[~is_template].mean()), 4),
             "error_template": round(float(err[is_template].mean()), 5)}
    log(f"relative error: free wordings {error['error_free']}, template sentences {error['error_template']}")
    return times, error


def main(argv: list[str] | None = None) -> dict:
    from diffusers import FluxPipeline

    from .saving import save_pipeline
    from .train_free import extend_text

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, default=Path("models/demo"), help="the saved model whose text encoders learn")
    ap.add_argument("--out", type=Path, default=Path("models/demo"))
    ap.add_argument("--work", type=Path, default=Path(".cache/demo-train/text"), help="resumable state")
    ap.add_argument("--steps", type=int, default=12000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--template-share", type=float, default=0.25, help="share of each batch that is template sentences")
    ap.add_argument("--colour-free", choices=("fill", "keep"), default="keep",
                    help="a prompt without a colour: fill = taught one fixed colour; keep = taught the template "
                         "without a colour (what the demo IP-Adapter was trained on: the reference decides)")
    ap.add_argument("--match", choices=("set", "position"), default="set",
                    help="set: T5 tokens compared as a set (the transformer reads them so); position: token by token")
    ap.add_argument("--ckpt-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=5150)
    ap.add_argument("--phase", default="free wording (text encoders)")
    ap.add_argument("--quick", action="store_true", help="a few steps (tests)")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.batch, args.ckpt_every = min(args.steps, 4), 8, 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    setup = Clock({})
    base_meta = json.loads((args.base / "studio.json").read_text())
    refuse_second_pass(args.base, base_meta, args.phase,
                       ": its text encoders are no longer the originals to learn from; pass --base a folder of the "
                       "first demo model (git show <commit>:models/demo, or python -m studio.demo.train)")
    pipe = FluxPipeline.from_pretrained(str(args.base), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    added = extend_text(pipe, args.seed)  # letters only, "shape": known prompts read exactly as before
    teacher = tuple(copy.deepcopy(m).eval().requires_grad_(False) for m in (pipe.text_encoder, pipe.text_encoder_2))
    log(f"base {args.base}; words added: {added or 'none'}")
    texts, targets = pairs(colour_free=args.colour_free)
    if args.quick:
        texts, targets = texts[:: max(1, len(texts) // 64)], targets[:: max(1, len(targets) // 64)]
    before = setup.totals()
    trained, error = train(pipe, teacher, texts, targets, args, args.work)
    times = {**stage_times(before, trained), **error}
    phase = {"stage": args.phase, "command": command_line("studio.demo.train_text", argv), "steps": args.steps, "lr": args.lr, "batch": args.batch,
             "match": args.match, "colour_free": args.colour_free, "wordings": len(texts), "seed": args.seed, **times}
    training = with_phase(base_meta.get("training", {}), phase)
    # Everything the base says about itself (sizes, adapters, fp16 check) but its reading.
    keep = {k: v for k, v in base_meta.items() if k not in ("vocabulary", "prompt_template", "training")}
    extra = {**keep, "training": training}
    save_pipeline(pipe, pipe.transformer, args.out, extra)  # the transformer as it is (no EMA here); writes studio.json
    log(f"saved {args.out}")
    return times


if __name__ == "__main__":
    main()
