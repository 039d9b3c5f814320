"""LoRA bench: what changing a mix costs, what fusing buys, what a loaded LoRA holds.

    .venv/bin/python bench/loras.py

On the demo model, with the two demo LoRAs (``models/loras/demo-outline``, ``demo-big``) when they
are there, else two LoRAs of the same shape (rank 8 on the same layers, float16 files, random
weights) made once into ``bench/_work/lora-models/``; one process, one CPU thread:

- weight_change_vs_generate: a lease whose only change is one LoRA's weight (the studio's path:
  gate, ``set_adapters``, no load; asserted) / one demo generation with the mix (``Studio.generate``:
  8 steps at 64x64, PNG and gallery row included);
- fused_vs_unfused: a generation with the mix fused into the weights / the same unfused (steady
  state: the first image after a switch, which pays for the fuse or unfuse, is left out; the
  images are asserted equal up to rounding);
- lora_mem_vs_file: extra process memory (RSS) once the LoRAs are loaded / their files' size. Eight
  copies of each file are loaded as sixteen adapters so the figure stands above the allocator's
  noise. The demo model runs in float32 on a CPU, so float16 files are held at twice their size
  (once, in the model's LoRA layers): about 2 is "held once" here; in bf16 on a GPU it is about 1.

Times are CPU seconds of the process (``time.process_time``), medians of interleaved runs.
The last line is the figure: ``weight_change_vs_generate=... fused_vs_unfused=... lora_mem_vs_file=...``.
"""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

WORK = ROOT / "bench" / "_work" / "lora-models"
NAMES = ("demo-outline", "demo-big")
PROMPT = "a red circle in the centre on a blue background"
COPIES = 8


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def now() -> float:
    return time.process_time()


def prepare() -> str:
    """The LoRA folder: the demo LoRAs, or stand-ins of their shape; and COPIES copies of each."""
    from studio.models.registry import DEMO_DIR

    loras = WORK / "loras"
    loras.mkdir(parents=True, exist_ok=True)
    shipped = ROOT / "models" / "loras"
    if all((shipped / f"{n}.safetensors").is_file() for n in NAMES):
        source = "the demo LoRAs"
        for name in NAMES:
            shutil.copy(shipped / f"{name}.safetensors", loras / f"{name}.safetensors")
    else:
        from studio.models.tiny_loras import save_tiny_lora

        source = "stand-ins (the demo LoRAs are not in models/loras/ yet): rank 8, float16, random"
        for seed, name in enumerate(NAMES):
            if not (loras / f"{name}.safetensors").is_file():
                save_tiny_lora("flux", DEMO_DIR, loras / f"{name}.safetensors", rank=8, seed=seed,
                               dtype=torch.float16)
    copies = loras / "copies"
    copies.mkdir(exist_ok=True)
    for name in NAMES:
        for i in range(COPIES):
            shutil.copy(loras / f"{name}.safetensors", copies / f"{name}-{i}.safetensors")
    return source


def rss() -> int:
    from studio.models.memory import rss_bytes

    gc.collect()
    return rss_bytes()


def main() -> None:
    t_start = time.perf_counter()
    source = prepare()
    from studio.config import Settings
    from studio.models.manager import LeasePlan
    from studio.requests import GenerationRequest, LoraSpec, Task
    from studio.wiring import build_studio

    studio = build_studio(Settings(models_dir=WORK, outputs_dir=WORK.parent / "lora-outputs", offline=True,
                                   device="cpu"))
    entry = studio.registry.require("demo")
    paths = {n: str(studio.registry.lora_path(n)) for n in NAMES}
    mix = (LoraSpec("demo-outline", 1.0), LoraSpec("demo-big", 0.5))
    request = GenerationRequest(PROMPT, model_id="demo", seed=7, loras=mix)

    def generate() -> np.ndarray:
        return np.asarray(studio.generate(request).images[0], dtype=np.int16)

    # -- lora_mem_vs_file: RSS before and after sixteen adapters ---------------------------------
    studio.generate(GenerationRequest(PROMPT, model_id="demo", seed=7))   # model loaded, allocator warm
    before = rss()
    copies = sorted((WORK / "loras" / "copies").glob("*.safetensors"))
    with studio.models.lease(entry, Task.TXT2IMG, LeasePlan(loras=tuple((str(p), 0.1) for p in copies))):
        pass
    grown = rss() - before
    files = sum(p.stat().st_size for p in copies)
    held = sum(r.bytes for r in studio.models.lora_rows())
    lora_mem_vs_file = grown / files
    log(f"{len(copies)} LoRAs ({source}): files {files / 2**20:.2f} MB, their layers in the model "
        f"{held / 2**20:.2f} MB, RSS +{grown / 2**20:.2f} MB")
    with studio.models.lease(entry):                    # off again; the copies go when idle
        pass

    # -- weight_change_vs_generate -------------------------------------------------------------
    generate()
    loads = studio.models.lora_loads
    changes, gens = [], []
    for i in range(7):
        plan = LeasePlan(loras=((paths["demo-outline"], 1.0), (paths["demo-big"], 0.5 + 0.05 * (i % 2 + 1))))
        t0 = now()
        with studio.models.lease(entry, Task.TXT2IMG, plan):
            pass
        changes.append(now() - t0)
        t0 = now()
        generate()                                      # itself a change back to 0.5: counted in gens
        gens.append(now() - t0)
    assert studio.models.lora_loads == loads, "a weight change must load nothing"
    weight_change = statistics.median(changes) / statistics.median(gens)
    log(f"weight change: {[f'{t * 1000:.2f} ms' for t in changes]}; generation: {[f'{t:.3f}' for t in gens]}")

    # -- fused_vs_unfused: steady-state generations, blocks A B B A --------------------------------
    unfused, fused, images = [], [], {}
    for block, fuse in enumerate((False, True, True, False)):
        studio.lora_fuse = fuse
        images[fuse] = generate()                       # the switch (fuse or unfuse) is paid here
        for _ in range(4):
            t0 = now()
            generate()
            (fused if fuse else unfused).append(now() - t0)
    studio.lora_fuse = False
    assert np.abs(images[True] - images[False]).max() <= 1, "fused and unfused must draw the same image"
    fused_vs_unfused = statistics.median(fused) / statistics.median(unfused)
    log(f"unfused: {[f'{t:.3f}' for t in unfused]}; fused: {[f'{t:.3f}' for t in fused]}")
    log(f"bench took {time.perf_counter() - t_start:.1f} s")
    print(f"weight_change_vs_generate={weight_change:.3f} fused_vs_unfused={fused_vs_unfused:.2f} "
          f"lora_mem_vs_file={lora_mem_vs_file:.2f}")


if __name__ == "__main__":
    main()
