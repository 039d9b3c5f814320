"""Model manager bench: what switching models and tabs costs, measured on this machine.

    .venv/bin/python bench/models.py

Builds (once, into bench/_work/, gitignored) a FLUX pipeline whose transformer has random weights
and ~0.6 GB of float32 parameters (tiny text encoders and VAE), a small ControlNet for it, and
the tiny FLUX model; then measures, in one process with one CPU thread:

- overhead:     Studio.generate (resolve, lease, progress callback, PNG written) / the raw
                pipeline call on the same model, prompt and seed (median of interleaved runs)
- tab_memory:   extra RSS once img2img + inpaint + ControlNet pipelines exist beside txt2img,
                as a fraction of the model's weight bytes (the ControlNet's own weights, a cached
                entry of their own, are loaded before the first reading)
- warm_vs_cold: switching back to a cached model / the cold load of that model from disk
- load_vs_raw:  the studio's cold load (lease: load, measure, place) / plain from_pretrained

A "cold load" here reads the files from the page cache (warmed first, for both sides: dropping the
machine's caches would disturb everyone else on it) and touches every weight once, so the model
is resident when the clock stops (safetensors files are memory-mapped lazily).

The last line is the figure: ``overhead=... tab_memory=... warm_vs_cold=... load_vs_raw=...``.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

torch.set_num_threads(1)

WORK = ROOT / "bench" / "_work"
MODELS = WORK / "models"
BIG = MODELS / "checkpoints" / "bench-flux"
SMALL = MODELS / "checkpoints" / "bench-tiny"
CONTROLNET = WORK / "controlnet" / "bench-flux-cn"
SIZE, STEPS, MSL = 64, 6, 32      # ~1 s of CPU a call: the ~15 ms of saving a PNG + gallery row is ~1.5 %


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def build_models() -> None:
    """The big random model (~0.6 GB), its ControlNet and the tiny model, saved once."""
    from diffusers import FluxControlNetModel, FluxPipeline, FluxTransformer2DModel

    from studio.models.tiny import build_tiny_flux_pipeline

    meta = {"family": "flux-schnell", "max_sequence_length": MSL, "width": SIZE, "height": SIZE,
            "default_steps": STEPS}
    if not (SMALL / "model_index.json").is_file():
        build_tiny_flux_pipeline(seed=0, max_length=MSL).save_pretrained(SMALL)
    if not (BIG / "model_index.json").is_file():
        t0 = time.perf_counter()
        tiny = build_tiny_flux_pipeline(seed=0, max_length=MSL)
        torch.manual_seed(7)
        # d = 8 heads x 128 = 1024: a double block ~37.7 M parameters, a single block ~15.7 M
        transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=2, num_single_layers=5,
                                             attention_head_dim=128, num_attention_heads=8, joint_attention_dim=32,
                                             pooled_projection_dim=32, guidance_embeds=False,
                                             axes_dims_rope=(16, 56, 56)).eval()
        pipe = FluxPipeline(scheduler=tiny.scheduler, vae=tiny.vae, text_encoder=tiny.text_encoder,
                            tokenizer=tiny.tokenizer, text_encoder_2=tiny.text_encoder_2,
                            tokenizer_2=tiny.tokenizer_2, transformer=transformer)
        pipe.save_pretrained(BIG, safe_serialization=True)
        log(f"built {BIG} in {time.perf_counter() - t0:.1f} s")
        if not (CONTROLNET / "config.json").is_file():
            cn = FluxControlNetModel.from_transformer(transformer, num_layers=1, num_single_layers=0,
                                                      attention_head_dim=128, num_attention_heads=8,
                                                      load_weights_from_transformer=False)
            cn.save_pretrained(CONTROLNET)
        del pipe, transformer, tiny
        gc.collect()
    for folder in (SMALL, BIG):
        (folder / "studio.json").write_text(json.dumps(meta))


def warm_page_cache(folder: Path) -> None:
    """Both loaders read from the page cache: the comparison is of the loaders, not of the disk."""
    for path in folder.rglob("*.safetensors"):
        with path.open("rb") as handle:
            while handle.read(64 << 20):
                pass


def touch(pipe) -> None:
    """Read every weight once. ``from_pretrained`` maps safetensors files lazily: without this a
    "load" of 0.6 GB takes 0.07 s and the reading happens during the first generation instead."""
    with torch.no_grad():
        for component in pipe.components.values():
            if isinstance(component, torch.nn.Module):
                for tensor in list(component.parameters()) + list(component.buffers()):
                    tensor.sum()


def rss() -> int:
    from studio.models.memory import rss_bytes

    return rss_bytes()


def now() -> float:
    """CPU seconds of this process (user + system). Wall-clock on this shared 2-core machine swings by
    +-50 % with the other agents' load; the CPU time a call costs does not."""
    return time.process_time()


def paired(a, b, *, pairs: int, clock: bool = False) -> tuple[list[float], list[float]]:
    """Interleaved A B B A ... runs: the machine is shared, so its load drifts; each pair sees the same.
    ``clock``: time the calls here (they return something else)."""
    ta, tb = [], []

    def once(fn, out):
        if clock:
            t0 = now()
            fn()
            out.append(now() - t0)
        else:
            out.append(fn())

    for i in range(pairs):
        if i % 2:
            once(b, tb)
            once(a, ta)
        else:
            once(a, ta)
            once(b, tb)
    return ta, tb


def ratio(num: list[float], den: list[float]) -> float:
    """Ratio of the medians of interleaved runs (steadier here than the median of per-pair ratios:
    one slow run, when another job's burst lands on it, spoils a pair but not a median)."""
    return statistics.median(num) / statistics.median(den)


def make_studio():
    from studio.config import Settings
    from studio.wiring import build_studio

    settings = Settings(models_dir=MODELS, outputs_dir=WORK / "outputs", offline=True, device="cpu")
    return build_studio(settings)


def main() -> None:
    t_start = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    build_models()
    warm_page_cache(BIG)
    warm_page_cache(CONTROLNET)
    from diffusers import FluxPipeline

    from studio.requests import GenerationRequest, Task

    # -- load_vs_raw: studio cold load vs plain from_pretrained, interleaved ----------------------
    studio = make_studio()
    big = studio.registry.require("bench-flux")
    small = studio.registry.require("bench-tiny")
    def raw_load() -> float:
        gc.collect()
        t0 = now()
        raw = FluxPipeline.from_pretrained(str(BIG), dtype=torch.float32, local_files_only=True)
        touch(raw)
        return now() - t0

    def studio_load() -> float:
        gc.collect()
        t0 = now()
        with studio.models.lease(big) as pipe:
            touch(pipe)
        elapsed = now() - t0
        studio.models.unload("bench-flux")
        return elapsed

    raw_load()                                                 # first-touch effects out of the figures
    raw_loads, studio_loads = paired(raw_load, studio_load, pairs=8)
    cold = statistics.median(studio_loads)
    load_vs_raw = ratio(studio_loads, raw_loads)
    log(f"cold load: studio {[f'{t:.3f}' for t in studio_loads]} raw {[f'{t:.3f}' for t in raw_loads]} "
        f"(medians {cold:.3f} / {statistics.median(raw_loads):.3f} s)")

    # -- warm_vs_cold: switch away and back to the cached model ----------------------------------
    with studio.models.lease(big):
        pass
    weight_bytes = studio.models.loaded()[0].bytes
    loads_before = studio.models.loads
    warm = []
    for _ in range(5):
        with studio.models.lease(small):
            pass
        t0 = now()
        with studio.models.lease(big):
            pass
        warm.append(now() - t0)
    assert studio.models.loads == loads_before + 1, "switching back must not load from disk"
    warm_vs_cold = statistics.median(warm) / cold
    log(f"warm switch back: {[f'{t * 1000:.2f} ms' for t in warm]} (ratio {warm_vs_cold:.2e}); "
        f"weights {weight_bytes / 2**30:.3f} GB")

    # -- tab_memory: img2img + inpaint + ControlNet pipelines beside txt2img ----------------------
    from studio.models.manager import LeasePlan

    plan = LeasePlan(controlnets=(str(CONTROLNET),))
    studio.models.component("controlnet", CONTROLNET, big.family.controlnet_class)
    gc.collect()
    rss0 = rss()
    for task, controlled in ((Task.IMG2IMG, False), (Task.INPAINT, False), (Task.TXT2IMG, True)):
        with studio.models.lease(big, task, plan if controlled else None):
            pass
    gc.collect()
    tab_memory = max(0, rss() - rss0) / weight_bytes
    assert studio.models.loads == loads_before + 1, "task pipelines must not load anything"
    log(f"task pipelines: +{(rss() - rss0) / 2**20:.1f} MB RSS for {weight_bytes / 2**20:.0f} MB of weights; "
        f"tasks cached: {studio.models.loaded()[-1].tasks}")

    # -- overhead: Studio.generate vs the raw pipeline call, same model, prompt and seed ----------
    raw = FluxPipeline.from_pretrained(str(BIG), dtype=torch.float32, local_files_only=True)
    raw.set_progress_bar_config(disable=True)
    request = GenerationRequest(prompt="a red circle on a white background", model_id="bench-flux",
                                width=SIZE, height=SIZE, steps=STEPS, seed=1234)

    @torch.inference_mode()            # as the runner does: the figure is the studio's own overhead
    def raw_call():
        return raw(prompt=request.prompt, height=SIZE, width=SIZE, num_inference_steps=STEPS, guidance_scale=0.0,
                   max_sequence_length=MSL, generator=[torch.Generator("cpu").manual_seed(1234)],
                   output_type="pil").images[0]

    def studio_call():
        return studio.generate(request).images[0]

    assert studio_call().tobytes() == raw_call().tobytes(), "studio and raw pipeline must draw the same image"
    raw_times, studio_times = paired(raw_call, studio_call, pairs=5, clock=True)
    overhead = ratio(studio_times, raw_times)
    log(f"generate: studio {[f'{t:.3f}' for t in studio_times]} raw {[f'{t:.3f}' for t in raw_times]} "
        f"(ratio of the fastest runs {min(studio_times) / min(raw_times):.3f})")
    log(f"bench took {time.perf_counter() - t_start:.1f} s")
    print(f"overhead={overhead:.2f} tab_memory={tab_memory:.3f} warm_vs_cold={warm_vs_cold:.3f} "
          f"load_vs_raw={load_vs_raw:.2f}")


if __name__ == "__main__":
    main()
