"""GPU bench: the studio against raw diffusers on a FLUX-shaped model, every placement, NF4, compile.

    python bench/gpu.py            (needs CUDA; elsewhere it says so and exits 0)

Builds (once, into bench/_work/, gitignored) the model of ../shared/GPU.md: a FLUX transformer with
random weights, 2 double + 6 single blocks, 3072 wide (1.57 B parameters), on the demo model's
text encoders and VAE; every call is 512x512, 8 steps, bf16. Measured in one run:

- overhead:                  Studio.generate (placement gpu, saving included) / the raw pipeline call
- group/leaf/model_offload_vs_gpu: the studio's time per call with that placement / placement gpu
- offload_peak_vram_vs_gpu:  peak VRAM of a group-offload call / of a gpu call
- nf4_vram_vs_bf16:          VRAM of the model loaded with --quantize nf4 / in bf16
- compile_speedup:           a call with --compile (after the first) / without; compile_first_s:
                             the first compiled call (it compiles), in seconds

The last line is the figure:
``overhead= group_offload_vs_gpu= leaf_offload_vs_gpu= model_offload_vs_gpu= offload_peak_vram_vs_gpu=
nf4_vram_vs_bf16= compile_speedup= compile_first_s=``.
Runs ``RUNS`` calls per setting after one warm-up call and takes the median.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

WORK = ROOT / "bench" / "_work" / "gpu"
MODEL = WORK / "models" / "checkpoints" / "flux-shaped"
SIZE, STEPS, RUNS, PROMPT = 512, 8, 5, "a red circle at the left on a blue background"


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def build_model() -> None:
    """The 1.57 B FLUX-shaped transformer on the demo's encoders and VAE, saved once (bf16)."""
    if (MODEL / "model_index.json").is_file():
        return
    from diffusers import FluxPipeline, FluxTransformer2DModel

    demo = FluxPipeline.from_pretrained(ROOT / "models" / "demo", dtype=torch.bfloat16)
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4 * demo.vae.config.latent_channels, num_layers=2, num_single_layers=6,
        attention_head_dim=128, num_attention_heads=24, joint_attention_dim=demo.text_encoder_2.config.d_model,
        pooled_projection_dim=demo.text_encoder.config.hidden_size, axes_dims_rope=(16, 56, 56)).to(torch.bfloat16)
    pipe = FluxPipeline(scheduler=demo.scheduler, vae=demo.vae, text_encoder=demo.text_encoder,
                        tokenizer=demo.tokenizer, text_encoder_2=demo.text_encoder_2, tokenizer_2=demo.tokenizer_2,
                        transformer=transformer)
    pipe.save_pretrained(MODEL, safe_serialization=True)
    meta = json.loads((ROOT / "models" / "demo" / "studio.json").read_text())
    (MODEL / "studio.json").write_text(json.dumps({
        "family": "flux-schnell", "max_sequence_length": meta["max_sequence_length"], "width": SIZE,
        "height": SIZE, "default_steps": STEPS, "default_guidance": 0.0}))


def timed(fn) -> tuple[float, int]:
    """Median seconds of ``RUNS`` calls after a warm-up, and the peak VRAM of one call."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(RUNS):
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), torch.cuda.max_memory_allocated()


def studio_with(outputs: Path, **settings):
    from studio.config import Settings
    from studio.wiring import build_studio

    return build_studio(Settings(models_dir=WORK / "models", outputs_dir=outputs, cache_dir=WORK / "cache",
                                 offline=True, device="cuda", default_model="flux-shaped", **settings))


def release(studio) -> None:
    studio.models.release_all()
    torch.cuda.empty_cache()


def main() -> int:
    if not torch.cuda.is_available():
        print("bench/gpu.py: no CUDA device here; nothing measured (run it on a GPU machine)")
        return 0
    from diffusers import FluxPipeline

    from studio.requests import GenerationRequest

    build_model()
    request = GenerationRequest(PROMPT, seed=1, steps=STEPS, width=SIZE, height=SIZE)
    outputs = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    figures: dict[str, float] = {}
    try:
        raw = FluxPipeline.from_pretrained(MODEL, dtype=torch.bfloat16).to("cuda")
        raw.set_progress_bar_config(disable=True)
        raw_s, _ = timed(lambda: raw(PROMPT, height=SIZE, width=SIZE, num_inference_steps=STEPS, guidance_scale=0.0,
                                     max_sequence_length=16, generator=torch.Generator("cpu").manual_seed(1)))
        del raw
        torch.cuda.empty_cache()
        per_placement = {}
        for placement in ("gpu", "group_offload", "sequential_offload", "model_offload"):
            studio = studio_with(outputs, placement=placement)
            per_placement[placement] = timed(lambda: studio.generate(request))
            log(f"{placement}: {per_placement[placement][0]:.3f} s, peak {per_placement[placement][1] / 2**30:.2f} GB")
            release(studio)
        gpu_s, gpu_peak = per_placement["gpu"]
        figures["overhead"] = gpu_s / raw_s
        figures["group_offload_vs_gpu"] = per_placement["group_offload"][0] / gpu_s
        figures["leaf_offload_vs_gpu"] = per_placement["sequential_offload"][0] / gpu_s
        figures["model_offload_vs_gpu"] = per_placement["model_offload"][0] / gpu_s
        figures["offload_peak_vram_vs_gpu"] = per_placement["group_offload"][1] / gpu_peak
        vram = {}
        for quantize in ("none", "nf4"):
            torch.cuda.empty_cache()
            before = torch.cuda.memory_allocated()
            studio = studio_with(outputs, placement="gpu", quantize=quantize)
            studio.warm_up()
            vram[quantize] = torch.cuda.memory_allocated() - before
            release(studio)
        figures["nf4_vram_vs_bf16"] = vram["nf4"] / vram["none"]
        studio = studio_with(outputs, placement="gpu", compile=True)
        t0 = time.perf_counter()
        studio.generate(request)
        torch.cuda.synchronize()
        figures["compile_first_s"] = time.perf_counter() - t0
        compiled_s, _ = timed(lambda: studio.generate(request))
        figures["compile_speedup"] = gpu_s / compiled_s
        release(studio)
    finally:
        shutil.rmtree(outputs, ignore_errors=True)
    order = ("overhead", "group_offload_vs_gpu", "leaf_offload_vs_gpu", "model_offload_vs_gpu",
             "offload_peak_vram_vs_gpu", "nf4_vram_vs_bf16", "compile_speedup", "compile_first_s")
    print(" ".join(f"{name}={figures[name]:.2f}" for name in order))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
