"""Train the embedded demo model on CPU: `python -m studio.demo.train [--out models/demo]`.

Stages (all seeded, two torch threads by default, ~85 min on a 2-core CPU):
  1. render the procedural dataset and encode every distinct caption with the pipeline's own
     `encode_prompt` (text encoders are small, random and frozen);
  2. train the VAE on reconstruction (L1 + MSE + image-gradient L1 + tiny KL);
  3. measure latent statistics -> vae shift_factor / scaling_factor; cache the latents;
  4. fine-tune the decoder alone on slightly noised latents (outlines stay crisp when the
     transformer's latents are a little off);
  5. train the FLUX transformer with the rectified-flow objective in the sampler's convention:
     x_s = (1 - s) x0 + s noise, target noise - x0, timestep s in [0, 1], s drawn like the
     sampler's shifted schedule; EMA weights are what ships;
  5b. a "detail" segment: more steps from the EMA weights at a lower LR, with noise levels
     shifted by 1 instead of 3 (median s = 0.5), i.e. more weight on the low noise levels that
     fix the final outlines;
  6. save a plain FluxPipeline (fp16 weights) + studio.json; checkpoints are saved on the way.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import components as C
from .dataset import make_dataset
from .saving import fp16_check, save_pipeline, write_studio_json
from .trainkit import cosine_lr, log, noise_levels, to_tensor

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def grad_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    dxa, dxb = a[..., :, 1:] - a[..., :, :-1], b[..., :, 1:] - b[..., :, :-1]
    dya, dyb = a[..., 1:, :] - a[..., :-1, :], b[..., 1:, :] - b[..., :-1, :]
    return (dxa - dxb).abs().mean() + (dya - dyb).abs().mean()


def recon_loss(rec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(rec, x) + F.mse_loss(rec, x) + 0.5 * grad_l1(rec, x)


def psnr(rec: torch.Tensor, x: torch.Tensor) -> float:
    mse = F.mse_loss(rec.clamp(-1, 1), x).item()
    return 10 * math.log10(4.0 / max(mse, 1e-12))


# ----------------------------------------------------------------------------- stages


def encode_captions(pipe, captions: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-caption (sequence, pooled) embeddings, stacked; each distinct caption is encoded once."""
    uniq = sorted(set(captions))
    out = {}
    with torch.no_grad():
        for i in range(0, len(uniq), 256):
            chunk = uniq[i : i + 256]
            pe, pooled, _ = pipe.encode_prompt(prompt=chunk, prompt_2=None, max_sequence_length=max_len)
            for c, e, p in zip(chunk, pe, pooled):
                out[c] = (e.float(), p.float())
    log(f"{len(out)} distinct captions encoded")
    return torch.stack([out[c][0] for c in captions]), torch.stack([out[c][1] for c in captions])


def train_vae(vae, images: np.ndarray, steps: int, batch: int, lr: float, rng: np.random.Generator) -> None:
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    t0 = time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, lr, warmup=min(100, steps // 10 + 1))
        x = to_tensor(images[rng.integers(0, len(images), batch)])
        post = vae.encode(x).latent_dist
        z = post.sample()
        rec = vae.decode(z).sample
        kl = post.kl().mean() / z[0].numel()
        loss = recon_loss(rec, x) + 1e-5 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"vae step {step}/{steps} loss {loss.item():.4f} psnr {psnr(rec.detach(), x):.1f} dB ({time.time() - t0:.0f}s)")
    vae.eval()


@torch.no_grad()
def latent_stats(vae, images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    means, stds = [], []
    for i in range(0, len(images), 256):
        d = vae.encode(to_tensor(images[i : i + 256])).latent_dist
        means.append(d.mean)
        stds.append(d.std)
    mean, std = torch.cat(means), torch.cat(stds)
    shift = mean.mean().item()
    scale = 1.0 / (mean - shift).std().item()
    return mean, std, shift, scale


def finetune_decoder(vae, images, lat_mean, lat_std, steps, batch, lr, noise, rng) -> None:
    """Decoder-only fine-tune on latents with a little extra noise (in normalised units)."""
    scale = vae.config.scaling_factor
    vae.train()
    params = list(vae.decoder.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    t0 = time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, lr, warmup=min(50, steps // 10 + 1))
        idx = torch.from_numpy(rng.integers(0, len(images), batch))
        x = to_tensor(images[idx.numpy()])
        z = lat_mean[idx] + lat_std[idx] * torch.randn_like(lat_mean[idx])
        sigma = torch.rand(batch, 1, 1, 1) * noise / scale
        z = z + sigma * torch.randn_like(z)
        rec = vae.decode(z).sample
        loss = recon_loss(rec, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"decoder step {step}/{steps} loss {loss.item():.4f} psnr {psnr(rec.detach(), x):.1f} dB ({time.time() - t0:.0f}s)")
    vae.eval()


def train_transformer(
    pipe, ema, latents_mean, latents_std, shift, scale, seq_embeds, pooled_embeds,
    steps, batch, lr, seed, ckpt_every, save_fn, bf16=True, noise_shift=C.SCHEDULER_SHIFT,
) -> None:
    tr = pipe.transformer
    tr.train()
    opt = torch.optim.AdamW(tr.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    n, ch, h, w = latents_mean.shape
    img_ids = pipe._prepare_latent_image_ids(batch, h // 2, w // 2, "cpu", torch.float32)
    txt_ids = torch.zeros(seq_embeds.shape[1], 3)
    ema_decay = 0.999
    t0 = time.time()
    running = None
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, lr, warmup=200)
        idx = torch.randint(0, n, (batch,), generator=gen)
        z = latents_mean[idx] + latents_std[idx] * torch.randn(batch, ch, h, w, generator=gen)
        x0 = pipe._pack_latents((z - shift) * scale, batch, ch, h, w)
        noise = torch.randn(x0.shape, generator=gen)
        s = noise_levels(batch, gen, noise_shift)
        xt = (1 - s[:, None, None]) * x0 + s[:, None, None] * noise
        target = noise - x0
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = tr(
                hidden_states=xt,
                timestep=s,
                pooled_projections=pooled_embeds[idx],
                encoder_hidden_states=seq_embeds[idx],
                txt_ids=txt_ids,
                img_ids=img_ids,
                return_dict=False,
            )[0]
        loss = F.mse_loss(pred.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tr.parameters(), 1.0)
        opt.step()
        d = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pt in zip(ema.parameters(), tr.parameters()):
                pe.lerp_(pt, 1 - d)
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 100 == 0 or step == steps - 1:
            el = time.time() - t0
            eta = el / (step + 1) * (steps - step - 1)
            log(f"dit step {step}/{steps} loss {running:.4f} lr {opt.param_groups[0]['lr']:.2e} ({el:.0f}s, eta {eta:.0f}s)")
        if ckpt_every and (step + 1) % ckpt_every == 0 and step + 1 < steps:
            save_fn(f"checkpoint at step {step + 1}")
    tr.eval()


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("models/demo"))
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (seconds)")
    ap.add_argument("--images", type=int, default=24000)
    ap.add_argument("--vae-steps", type=int, default=1300)
    ap.add_argument("--dec-steps", type=int, default=500)
    ap.add_argument("--steps", type=int, default=11000, help="transformer steps")
    ap.add_argument("--detail-steps", type=int, default=6000, help="transformer steps of the detail segment (0: none)")
    ap.add_argument("--detail-lr", type=float, default=4e-4)
    ap.add_argument("--detail-noise-shift", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=32, help="transformer batch")
    ap.add_argument("--vae-batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--double-blocks", type=int, default=2)
    ap.add_argument("--single-blocks", type=int, default=4)
    ap.add_argument("--ckpt-every", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--noise-shift", type=float, default=C.SCHEDULER_SHIFT,
                    help="static shift of the training noise levels (default: the sampler's, 3)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for the transformer (no faster here)")
    ap.add_argument("--fp32", action="store_true", help="save fp32 weights instead of fp16")
    ap.add_argument("--resume", type=Path, help="continue training the transformer of a saved demo model "
                                                "(its tokenizers, text encoders and VAE are kept as they are)")
    args = ap.parse_args(argv)
    if args.quick:
        args.images, args.vae_steps, args.dec_steps, args.steps = 64, 3, 2, 3
        args.batch, args.vae_batch, args.ckpt_every = 4, 4, 0
        args.detail_steps, args.threads = min(args.detail_steps, 2), 1

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t_start = time.time()

    if args.resume:
        return resume(args, t_start)

    log(f"rendering {args.images} images")
    images, captions, _ = make_dataset(args.images, args.seed)
    clip_tok, t5_tok = C.build_clip_tokenizer(), C.build_t5_tokenizer()
    clip, t5 = C.build_text_encoders(clip_tok, t5_tok, seed=args.seed)
    vae = C.build_vae(seed=args.seed)
    transformer = C.build_transformer(args.seed, args.double_blocks, args.single_blocks)
    pipe = C.assemble(vae, transformer, clip, t5, clip_tok, t5_tok)
    pipe.set_progress_bar_config(disable=True)
    n_params = sum(p.numel() for p in transformer.parameters())
    log(f"transformer {n_params / 1e6:.2f}M params, vae {sum(p.numel() for p in vae.parameters()) / 1e6:.2f}M")

    seq_embeds, pooled_embeds = encode_captions(pipe, captions, C.TEXT_LEN)

    t_vae = time.time()
    train_vae(vae, images, args.vae_steps, args.vae_batch, 2e-3, rng)
    lat_mean, lat_std, shift, scale = latent_stats(vae, images)
    vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    log(f"latents {tuple(lat_mean.shape[1:])}, shift_factor {shift:.4f}, scaling_factor {scale:.4f}")
    finetune_decoder(vae, images, lat_mean, lat_std, args.dec_steps, args.vae_batch, 3e-4, 0.3, rng)
    with torch.no_grad():
        x = to_tensor(images[:256])
        vae_psnr = psnr(vae.decode(lat_mean[:256]).sample, x)
    t_vae = time.time() - t_vae
    log(f"vae done in {t_vae:.0f}s, psnr {vae_psnr:.1f} dB")

    import copy

    ema = copy.deepcopy(transformer).eval().requires_grad_(False)
    extra = {
        "training": {
            "command": "python -m studio.demo.train",
            "images": args.images,
            "vae_steps": args.vae_steps,
            "decoder_steps": args.dec_steps,
            "transformer_steps": args.steps,
            "detail_steps": args.detail_steps,
            "detail_lr": args.detail_lr,
            "detail_noise_shift": args.detail_noise_shift,
            "threads": args.threads,
            "transformer_batch": args.batch,
            "transformer_params": n_params,
            "seed": args.seed,
            "vae_psnr_db": round(vae_psnr, 1),
        }
    }

    def save(note: str) -> None:
        extra["training"]["note"] = note
        extra["training"]["wall_time_s"] = round(time.time() - t_start)
        save_pipeline(pipe, ema, args.out, extra, fp16=not args.fp32)
        log(f"saved {args.out} ({note})")

    train_transformer(
        pipe, ema, lat_mean, lat_std, shift, scale, seq_embeds, pooled_embeds,
        args.steps, args.batch, args.lr, args.seed, args.ckpt_every, save, bf16=args.bf16,
        noise_shift=args.noise_shift,
    )
    if args.detail_steps:
        log(f"detail segment: {args.detail_steps} steps from the EMA weights, LR {args.detail_lr}, "
            f"noise shift {args.detail_noise_shift}")
        transformer.load_state_dict(ema.state_dict())  # what a --resume from the saved model would start from
        train_transformer(
            pipe, ema, lat_mean, lat_std, shift, scale, seq_embeds, pooled_embeds,
            args.detail_steps, args.batch, args.detail_lr, args.seed + 1, args.ckpt_every, save, bf16=args.bf16,
            noise_shift=args.detail_noise_shift,
        )
    save("complete")
    total = time.time() - t_start
    extra["training"]["wall_time_s"] = round(total)
    extra["fp16_check"] = fp16_check(pipe, ema, args.out, n_prompts=4 if args.quick else 16)
    write_studio_json(args.out, extra)
    log(f"fp16 check: {extra['fp16_check']}")
    log(f"training complete in {total / 60:.1f} min")
    return {"wall_time_s": total, "vae_psnr": vae_psnr}


def resume(args, t_start: float) -> dict:
    """Second phase: more transformer steps from a saved model, with a fresh cosine schedule.

    Each phase is appended to studio.json "training"/"resumed" (docs/demo.md has the phases that
    led to the one-command recipe). The VAE and its latent shift/scale are kept exactly.
    """
    import copy

    from diffusers import FluxPipeline

    before = json.loads((args.resume / "studio.json").read_text())
    pipe = FluxPipeline.from_pretrained(str(args.resume), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    log(f"resuming from {args.resume}: rendering {args.images} images")
    images, captions, _ = make_dataset(args.images, args.seed)
    seq_embeds, pooled_embeds = encode_captions(pipe, captions, C.TEXT_LEN)
    with torch.no_grad():
        lat_mean, lat_std, _, _ = latent_stats(pipe.vae, images)
    shift, scale = pipe.vae.config.shift_factor, pipe.vae.config.scaling_factor
    log(f"latents {tuple(lat_mean.shape[1:])}, kept shift_factor {shift:.4f}, scaling_factor {scale:.4f}")
    ema = copy.deepcopy(pipe.transformer).eval().requires_grad_(False)
    extra = {"training": dict(before.get("training", {}))}
    phases = list(extra["training"].get("resumed", []))
    command = f"python -m studio.demo.train --resume {args.resume} --steps {args.steps} --lr {args.lr}"
    if args.noise_shift != C.SCHEDULER_SHIFT:
        command += f" --noise-shift {args.noise_shift:g}"
    phase = {"command": command + f" --threads {args.threads}", "transformer_steps": args.steps, "lr": args.lr,
             "noise_shift": args.noise_shift, "seed": args.seed + 1 + len(phases)}
    extra["training"]["resumed"] = phases + [phase]
    first_wall = extra["training"].get("wall_time_s", 0)

    def save(note: str) -> None:
        phase["note"] = note
        phase["wall_time_s"] = round(time.time() - t_start)
        extra["training"]["wall_time_s_total"] = first_wall + sum(p.get("wall_time_s", 0) for p in phases) \
            + phase["wall_time_s"]
        save_pipeline(pipe, ema, args.out, extra, fp16=not args.fp32)
        log(f"saved {args.out} ({note})")

    train_transformer(pipe, ema, lat_mean, lat_std, shift, scale, seq_embeds, pooled_embeds,
                      args.steps, args.batch, args.lr, phase["seed"], args.ckpt_every, save, bf16=args.bf16,
                      noise_shift=args.noise_shift)
    save("complete")
    extra["fp16_check"] = fp16_check(pipe, ema, args.out, n_prompts=4 if args.quick else 16)
    write_studio_json(args.out, extra)
    total = time.time() - t_start
    log(f"resumed training complete in {total / 60:.1f} min")
    return {"wall_time_s": total}


if __name__ == "__main__":
    main()
