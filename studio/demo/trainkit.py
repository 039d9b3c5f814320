"""What every demo training stage shares: schedules, noise levels, latents, captions, checkpoints.

The flow-matching convention is the sampler's (FlowMatchEulerDiscreteScheduler, static shift):
x_s = (1 - s) x0 + s noise, target noise - x0, timestep s in [0, 1] (the pipeline passes t / 1000).
Latents are packed and position ids made by the pipeline's own `_pack_latents` /
`_prepare_latent_image_ids`, so training sees exactly what sampling feeds the transformer.

`Resumable` keeps one stage's state (modules, optimizers, step, random generators) in one file,
written atomically every few hundred steps: the stage's command, run again, goes on from there.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import components as C


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cosine_lr(step: int, total: int, base: float, warmup: int, floor: float = 0.05) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(pictures: torch.Tensor) -> np.ndarray:
    """float NCHW in [-1, 1] (what a VAE decodes) -> uint8 NHWC, rounded as the pipelines round."""
    return ((pictures.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def noise_levels(batch: int, gen: torch.Generator, shift: float = C.SCHEDULER_SHIFT) -> torch.Tensor:
    """80% logit-normal(0, 1) + 20% uniform, then a static shift.

    With the sampler's own shift (3, the default) the median level is s = 0.75, where 8-step
    sampling spends most of its steps; shift 1 (median 0.5) puts more weight on the low levels
    whose predictions fix the final outlines (the last of 8 steps jumps from s = 0.3 to 0).
    """
    u = torch.sigmoid(torch.randn(batch, generator=gen))
    uni = torch.rand(batch, generator=gen)
    pick = torch.rand(batch, generator=gen) < 0.2
    u = torch.where(pick, uni, u)
    return C.shift_sigmas(u, shift)


def encode_captions(pipe, captions: list[str], max_len: int = C.TEXT_LEN) -> tuple[torch.Tensor, torch.Tensor]:
    """(sequence, pooled) embeddings of `captions`, in order (the text encoders are frozen)."""
    seqs, pooled = [], []
    with torch.no_grad():
        for i in range(0, len(captions), 256):
            pe, pp, _ = pipe.encode_prompt(prompt=captions[i : i + 256], prompt_2=None, max_sequence_length=max_len)
            seqs.append(pe.float())
            pooled.append(pp.float())
    return torch.cat(seqs), torch.cat(pooled)


class CaptionTable:
    """Caption embeddings, each caption encoded once: `captions` up front, any other on first use;
    `lookup(texts)` -> (seq, pooled) rows."""

    def __init__(self, pipe, captions: list[str] = ()) -> None:
        self.pipe, self.index, self.seq, self.pooled = pipe, {}, [], []
        self._add(list(captions))

    def _add(self, captions: list[str]) -> None:
        new = [c for c in dict.fromkeys(captions) if c not in self.index]
        if not new:
            return
        seq, pooled = encode_captions(self.pipe, new)
        for c, e, p in zip(new, seq, pooled):
            self.index[c] = len(self.seq)
            self.seq.append(e)
            self.pooled.append(p)

    def lookup(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        self._add(list(texts))
        idx = [self.index[t] for t in texts]
        return torch.stack([self.seq[i] for i in idx]), torch.stack([self.pooled[i] for i in idx])


@torch.no_grad()
def encode_latents(vae, images: np.ndarray, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """VAE posterior (mean, std) of uint8 NHWC images, stored as float16 (sampled as float32)."""
    means, stds = [], []
    for i in range(0, len(images), batch):
        d = vae.encode(to_tensor(images[i : i + batch])).latent_dist
        means.append(d.mean.half())
        stds.append(d.std.half())
    return torch.cat(means), torch.cat(stds)


def sample_packed(pipe, mean: torch.Tensor, std: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A posterior sample of latents, normalised like the pipeline does and packed 2x2."""
    b, ch, h, w = mean.shape
    z = mean.float() + std.float() * torch.randn(b, ch, h, w, generator=gen)
    cfg = pipe.vae.config
    return pipe._pack_latents((z - cfg.shift_factor) * cfg.scaling_factor, b, ch, h, w)


def image_ids(pipe, latent_h: int, latent_w: int) -> torch.Tensor:
    return pipe._prepare_latent_image_ids(1, latent_h // 2, latent_w // 2, "cpu", torch.float32)


def noised(x0: torch.Tensor, gen: torch.Generator, shift: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (x_s, s, target) for a batch of packed clean latents."""
    noise = torch.randn(x0.shape, generator=gen)
    s = noise_levels(x0.shape[0], gen, shift)
    xt = (1 - s[:, None, None]) * x0 + s[:, None, None] * noise
    return xt, s, noise - x0


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float = 0.999) -> None:
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for pe, pt in zip(ema.parameters(), model.parameters()):
            pe.lerp_(pt, 1 - d)


class Clock:
    """Wall and CPU seconds of a stage's training, summed over every run of its command (the
    totals are saved with the resumable state). CPU time is what one core spent on this process:
    on a shared machine it is the figure an idle one would have shown as wall time (one thread)."""

    def __init__(self, before: dict) -> None:
        self.wall0, self.cpu0 = before.get("wall_time_s", 0.0), before.get("cpu_time_s", 0.0)
        self.t0, self.c0 = time.time(), time.process_time()

    def totals(self) -> dict[str, float]:
        return {"wall_time_s": round(self.wall0 + time.time() - self.t0, 1),
                "cpu_time_s": round(self.cpu0 + time.process_time() - self.c0, 1)}


def stage_times(before: dict[str, float], train: dict[str, float]) -> dict[str, int]:
    """This run's set-up (`before`: a Clock started with the command, read when training starts)
    plus the training over every run: the stage's figures for its record."""
    return {"wall_time_s": round(before["wall_time_s"] + train["wall_time_s"]),
            "cpu_time_s": round(before["cpu_time_s"] + train["cpu_time_s"]),
            "train_wall_time_s": round(train["wall_time_s"]), "train_cpu_time_s": round(train["cpu_time_s"])}


class Steps:
    """What every training step ends with: one optimiser step (gradients clipped to norm 1), a running
    loss logged every 100 steps with an ETA, and the resumable state saved every ``ckpt_every`` steps
    (not at the last one: ``finish`` saves that, with the stage's times)."""

    def __init__(self, opt, params, state: "Resumable", clock: Clock, start: int, total: int,
                 ckpt_every: int) -> None:
        self.opt, self.params, self.state, self.clock = opt, list(params), state, clock
        self.start, self.total, self.ckpt_every = start, total, ckpt_every
        self.t0, self.running = time.time(), None

    def optimise(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()

    def done(self, step: int, loss: torch.Tensor, lr: float) -> None:
        value = loss.item()
        self.running = value if self.running is None else 0.98 * self.running + 0.02 * value
        if step % 100 == 0 or step == self.total - 1:
            el = time.time() - self.t0
            eta = el / (step + 1 - self.start) * (self.total - step - 1)
            log(f"step {step}/{self.total} loss {self.running:.4f} lr {lr:.2e} ({el:.0f}s, eta {eta:.0f}s)")
        if self.ckpt_every and (step + 1) % self.ckpt_every == 0 and step + 1 < self.total:
            self.state.save(step + 1, **self.clock.totals())

    def finish(self) -> dict[str, float]:
        """Save the final state; -> wall and CPU seconds over every run of the stage."""
        times = self.clock.totals()
        self.state.save(self.total, **times)
        return times


def name_values(text: str, names, option: str, start: dict[str, float] | None = None) -> dict[str, float]:
    """Parse an option of the form NAME=VALUE,... (`names`: the allowed names) onto `start`."""
    import argparse

    out = dict(start or {})
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        if name not in names:
            raise argparse.ArgumentTypeError(f"{option}: unknown name {name!r}; expected one of {sorted(names)}")
        out[name] = float(value)
    return out


def command_line(module: str, argv: list[str] | None) -> str:
    """The command a stage ran as, for its record: ``python -m <module> <its arguments>``."""
    return " ".join([f"python -m {module}", *(sys.argv[1:] if argv is None else argv)])


def with_phase(training: dict, phase: dict) -> dict:
    """A studio.json ``training`` record with ``phase`` last (replacing an earlier run of its stage)."""
    phases = [p for p in training.get("phases", []) if p.get("stage") != phase["stage"]]
    return {**training, "phases": phases + [phase]}


def refuse_second_pass(base: Path, meta: dict, stage: str, why: str) -> None:
    """Stop (SystemExit) when the model at ``base`` (its studio.json ``meta``) already went through
    ``stage``: a stage that learns from the first model's parts cannot learn from its own output."""
    if any(p.get("stage") == stage for p in meta.get("training", {}).get("phases", [])):
        raise SystemExit(f"{base} already went through {stage!r}{why}")


def publish(tmp: Path, out: Path) -> None:
    """Put a finished folder ``tmp`` in place of ``out`` (a half-written one is never at ``out``)."""
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


class Resumable:
    """One stage's training state in one file (`<work>/state.pt`), saved atomically."""

    def __init__(self, work: Path, **objects) -> None:
        self.path = Path(work) / "state.pt"
        self.objects = objects  # name -> module / optimizer / torch.Generator / np.random.Generator

    def save(self, step: int, **extra) -> None:
        state = {"step": step, "extra": extra}
        for name, obj in self.objects.items():
            if isinstance(obj, torch.Generator):
                state[name] = obj.get_state()
            elif isinstance(obj, np.random.Generator):
                state[name] = obj.bit_generator.state
            else:
                state[name] = obj.state_dict()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)

    def load(self) -> tuple[int, dict]:
        """-> (step to start from, extra); (0, {}) when there is nothing to resume."""
        if not self.path.is_file():
            return 0, {}
        state = torch.load(self.path, weights_only=False)
        for name, obj in self.objects.items():
            if isinstance(obj, torch.Generator):
                obj.set_state(state[name])
            elif isinstance(obj, np.random.Generator):
                obj.bit_generator.state = state[name]
            else:
                obj.load_state_dict(state[name])
        log(f"resumed from {self.path} at step {state['step']}")
        return state["step"], state["extra"]


def folder_bytes(path: Path) -> int:
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def fix_tokenizer_classes(folder: Path) -> None:
    """model_index.json names the tokenizers PreTrainedTokenizerFast (transformers 5 writes its
    alias TokenizersBackend, unknown to older versions); the class loads tokenizer.json as is."""
    index = Path(folder) / "model_index.json"
    data = json.loads(index.read_text())
    for key in ("tokenizer", "tokenizer_2"):
        if key in data and data[key][1] == "TokenizersBackend":
            data[key] = ["transformers", "PreTrainedTokenizerFast"]
    index.write_text(json.dumps(data, indent=2) + "\n")
