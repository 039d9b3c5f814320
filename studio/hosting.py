"""Where the studio runs: a local machine, a Hugging Face Space, a ZeroGPU Space.

ZeroGPU lends a GPU per call to functions decorated with ``spaces.GPU(duration=...)``; asking for
too little time kills the call, too much queues it behind others. ``gpu_runner`` returns the
wrapper the Studio runs its GPU work through: ``spaces.GPU`` with a duration estimated from the
request on ZeroGPU, the function itself everywhere else (no ``spaces`` import off a Space: it
patches torch when imported). No Gradio, no torch here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

# Seconds per denoising step per megapixel on the GPU a ZeroGPU Space lends (an H200 slice), by
# family: estimates for the duration asked for, with margin; a model's studio.json may override
# ("gpu_seconds_per_step_mp").
SECONDS_PER_STEP_MP = {"flux-schnell": 0.4, "flux-dev": 0.4, "flux2": 1.2, "sdxl": 0.12, "sd15": 0.06, "sd3": 0.3}
LOAD_SECONDS = 20          # placing a cached model on the lent GPU, VAE decode, saving
MIN_SECONDS, MAX_SECONDS = 15, 300


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on", "t")


def on_space(env: Mapping[str, str] | None = None) -> bool:
    """A Hugging Face Space sets SPACE_ID (owner/name)."""
    return bool((env if env is not None else os.environ).get("SPACE_ID"))


def on_zero_gpu(env: Mapping[str, str] | None = None) -> bool:
    return truthy((env if env is not None else os.environ).get("SPACES_ZERO_GPU"))


def estimate_seconds(family: str, width: int, height: int, steps: int, images: int,
                     per_step_mp: float | None = None) -> int:
    """GPU seconds to ask ZeroGPU for: load + steps x megapixels x images at the family's rate, x1.5."""
    rate = per_step_mp if per_step_mp is not None else SECONDS_PER_STEP_MP.get(family, 0.5)
    work = steps * (width * height / 1e6) * max(1, images) * rate
    return int(min(MAX_SECONDS, max(MIN_SECONDS, math.ceil(LOAD_SECONDS + 1.5 * work))))


GpuRunner = Callable[[Callable[..., Any], int], Callable[..., Any]]


def plain_runner(fn: Callable[..., Any], seconds: int) -> Callable[..., Any]:
    return fn


def gpu_runner(env: Mapping[str, str] | None = None, spaces_module=None) -> GpuRunner:  # noqa: ANN001
    """How GPU work is run here: through ``spaces.GPU(duration=seconds)`` on ZeroGPU, as it is
    elsewhere. ``spaces_module``: a stand-in for tests."""
    if not on_zero_gpu(env):
        return plain_runner
    if spaces_module is None:
        import spaces as spaces_module  # noqa: PLC0415 - only on ZeroGPU: importing it patches torch

    def run(fn: Callable[..., Any], seconds: int) -> Callable[..., Any]:
        return spaces_module.GPU(fn, duration=seconds)

    return run
