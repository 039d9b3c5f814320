"""Evaluate the demo model: `python -m studio.demo.eval [--model models/demo] [--quick]`.

Loads the folder with the plain `FluxPipeline.from_pretrained` and the sampling defaults from
its studio.json, generates every eval prompt for several seeds at 64 px / 8 steps with one torch
thread, classifies each picture strictly (studio.demo.classify) and ends with one line:

    colour=0.97 background=0.99 shape=0.85 position=0.93 sec_per_image=0.31

where shape is the LOWEST per-class shape accuracy (each class is printed above it).
`--family` gives the figures of the whole demo family instead (studio.demo.family_eval).
`--validate` checks the judge instead: ground truth (also through the model's VAE) must pass,
near-miss shapes (studio.demo.near_misses) must not.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from .classify import classify  # noqa: E402
from .dataset import SHAPES, eval_prompts, make_dataset  # noqa: E402
from .trainkit import to_tensor, to_uint8  # noqa: E402


def load(model_dir: str | Path):
    """The shipped model through the plain pipeline class, plus its studio.json."""
    from diffusers import FluxPipeline

    model_dir = Path(model_dir)
    meta = json.loads((model_dir / "studio.json").read_text())
    pipe = FluxPipeline.from_pretrained(model_dir, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe, meta


def generate(pipe, meta: dict, prompts: list[str], seeds: list[int], steps: int | None = None) -> np.ndarray:
    """-> uint8 (len(prompts), len(seeds), H, W, 3); seed s of prompt p uses Generator(s)."""
    gens = [torch.Generator().manual_seed(s) for _ in prompts for s in seeds]
    with torch.inference_mode():
        out = pipe(
            prompt=prompts,
            num_images_per_prompt=len(seeds),
            generator=gens,
            num_inference_steps=steps or meta["default_steps"],
            guidance_scale=meta["default_guidance"],
            max_sequence_length=meta["max_sequence_length"],
            height=meta["height"],
            width=meta["width"],
            output_type="np",
        ).images
    imgs = (np.clip(out, 0, 1) * 255).round().astype(np.uint8)
    return imgs.reshape(len(prompts), len(seeds), *imgs.shape[1:])


def score(images: np.ndarray, truths: list[dict]) -> dict:
    """images (P, S, H, W, 3) -> accuracies and per-image verdicts."""
    tally = {k: [0, 0] for k in ("colour", "background", "position", *SHAPES)}
    verdicts = []
    for p, truth in enumerate(truths):
        row = []
        for img in images[p]:
            v = classify(img)
            row.append(v)
            for key, ok in (
                ("colour", v.colour == truth["colour"]),
                ("background", v.background == truth["background"]),
                ("position", v.position == truth["position"]),
                (truth["shape"], v.shape == truth["shape"]),
            ):
                tally[key][0] += int(ok)
                tally[key][1] += 1
        verdicts.append(row)
    acc = {k: (a / b if b else float("nan")) for k, (a, b) in tally.items()}
    acc["shape"] = min(acc[s] for s in SHAPES)
    return {"acc": acc, "verdicts": verdicts}


def contact_sheet(images: np.ndarray, prompts: list[str], verdicts, truths, path: Path, scale: int = 2) -> None:
    """Rows = prompts, columns = seeds; a green frame where the shape was judged right, red otherwise."""
    from PIL import Image, ImageDraw

    p_n, s_n, h, w, _ = images.shape
    tile, pad, label_w = h * scale, 4, 330
    sheet = Image.new("RGB", (label_w + s_n * (tile + pad) + pad, p_n * (tile + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for p in range(p_n):
        y = pad + p * (tile + pad)
        draw.text((6, y + tile // 2 - 6), prompts[p], fill=(0, 0, 0))
        for s in range(s_n):
            x = label_w + pad + s * (tile + pad)
            ok = verdicts[p][s].shape == truths[p]["shape"]
            draw.rectangle([x - 2, y - 2, x + tile + 1, y + tile + 1], fill=(40, 170, 60) if ok else (220, 40, 40))
            sheet.paste(Image.fromarray(images[p, s]).resize((tile, tile), Image.Resampling.NEAREST), (x, y))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)


def line(acc: dict, sec: float) -> str:
    return (
        f"colour={acc['colour']:.2f} background={acc['background']:.2f} shape={acc['shape']:.2f} "
        f"position={acc['position']:.2f} sec_per_image={sec:.2f}"
    )


def vae_round_trip(vae, images: np.ndarray, batch: int = 50) -> np.ndarray:
    """images through the model's own VAE (encode -> mean latent -> decode), uint8 like the input."""
    with torch.inference_mode():
        x = to_tensor(images)
        rec = torch.cat([vae.decode(vae.encode(x[i : i + batch]).latent_dist.mean).sample for i in range(0, len(x), batch)])
    return to_uint8(rec)


def validate(model_dir: str | Path | None, n: int = 600, seed: int = 99, n_misses: int = 40) -> str:
    """Check the judge both ways, with no transformer involved.

    Positive checks: ground-truth renders, and the same renders through the model's VAE (the
    best any transformer sampling in that latent space can do) must pass. Negative checks:
    near-miss shapes (studio.demo.near_misses) must not be accepted as the class they imitate.
    Ends with the usual line, for the ground-truth renders.
    """
    from .near_misses import NEAR_MISSES, render_near_miss

    images, _, specs = make_dataset(n, seed)
    truths = [{"shape": s.shape, "colour": s.colour, "background": s.background, "position": s.position} for s in specs]
    res = score(images[:, None], truths)
    sets = [("ground truth", res)]
    if model_dir is not None:
        pipe, _ = load(model_dir)
        sets.append((f"through the VAE of {model_dir}", score(vae_round_trip(pipe.vae, images)[:, None], truths)))
    for name, r in sets:
        print(f"{name}: " + "  ".join(f"{s} {r['acc'][s]:.3f}" for s in SHAPES))
    print(f"near misses, accepted as the class they imitate ({n_misses} each; * = must be ~0):")
    for c in NEAR_MISSES:
        accepted = np.mean([classify(img).shape == c.claimed for img in render_near_miss(c, n_misses)])
        print(f"  {'*' if c.must_reject else ' '} {c.name:38s} as {c.claimed:8s} {accepted:.3f}")
    return line(res["acc"], 0.0)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/demo")
    ap.add_argument("--quick", action="store_true", help="12 prompts x 2 seeds, well under a minute")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32, help="images per pipeline call")
    ap.add_argument("--steps", type=int, default=None, help="override studio.json default_steps")
    ap.add_argument("--sheet", default="docs/demo_contact_sheet.png", help="'' to skip")
    ap.add_argument("--validate", action="store_true",
                    help="check the judge: ground truth and the model's VAE pass, near-miss shapes fail")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--family", action="store_true",
                    help="the demo family: free wording, sizes, ControlNet, IP-Adapter, LoRAs (studio.demo.family_eval)")
    ap.add_argument("--controlnet", default="models/controlnet/demo-union")
    ap.add_argument("--ip-adapter", default="models/ip_adapter/demo")
    ap.add_argument("--loras", default="models/loras")
    ap.add_argument("--sheets", default="docs", help="folder for the --family contact sheets ('' to skip)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.family:
        from .family_eval import family

        out = family(Path(args.model), Path(args.controlnet), Path(args.ip_adapter), Path(args.loras),
                     list(range(args.seeds)), Path(args.sheets) if args.sheets else None)
        print(out)
        return out

    if args.validate:
        out = validate(args.model if Path(args.model, "vae").is_dir() else None)
        print(out)
        return out

    pipe, meta = load(args.model)
    cases = eval_prompts()
    seeds = list(range(args.seeds))
    if args.quick:
        cases, seeds = cases[::5] + cases[2::5], [0, 1]
    prompts = [c[0] for c in cases]
    truths = [c[1] for c in cases]

    generate(pipe, meta, prompts[:1], [0], args.steps)  # warm-up, not timed
    per_call = max(1, args.batch // len(seeds))
    chunks, t0 = [], time.perf_counter()
    for i in range(0, len(prompts), per_call):
        chunks.append(generate(pipe, meta, prompts[i : i + per_call], seeds, args.steps))
    sec = (time.perf_counter() - t0) / (len(prompts) * len(seeds))
    images = np.concatenate(chunks)

    res = score(images, truths)
    acc = res["acc"]
    print(f"model {args.model}: {len(prompts)} prompts x {len(seeds)} seeds, "
          f"{args.steps or meta['default_steps']} steps, {meta['width']}x{meta['height']}, {args.threads} thread(s)")
    for s in SHAPES:
        vs = [v for t, row in zip(truths, res["verdicts"]) if t["shape"] == s for v in row]
        best = sum(v.best_fit == s for v in vs) / len(vs)
        iou = float(np.median([v.iou for v in vs]))
        off = float(np.median([v.offset for v in vs]))
        print(f"  shape {s:9s} {acc[s]:.3f}   (best-fitting outline: {best:.3f}, median IoU {iou:.3f}, "
              f"median outline offset {off:.2f} px)")
    if args.sheet and not args.quick:
        contact_sheet(images, prompts, res["verdicts"], truths, Path(args.sheet))
        print(f"contact sheet: {args.sheet}")
    out = line(acc, sec)
    print(out)
    return out


if __name__ == "__main__":
    main()
