"""Per-lease adapters: what rewires the modules that every task pipeline of a model shares.

LoRAs and IP-Adapters change the shared transformer/UNet, and every ``from_pipe`` sibling
(img2img, inpaint, ControlNet pipelines) runs through it. So a lease applies them and resets
them when it ends: the next lease, of any task, runs the base model again, pixel for pixel
(``tests/test_ip_adapter.py``, ``tests/models/test_manager_real.py``).

One ``Adapter`` per kind reads its part of the ``LeasePlan`` (``field``). The model manager calls
``apply`` for each kind that ``wants`` it (by default: the plan names the kind), in order, and
``reset`` in reverse order when the lease ends, also after a failure halfway through ``apply`` (so
``reset`` must cope with a partial ``apply``). LoRAs (``lora_adapter.py``) keep their mix on the model
between leases and change only what differs. What an adapter needs from the manager comes in an ``AdapterContext``: cached
components (pinned for the lease), this model's memory for the kind, its placement. A new kind
(T2I adapters; FLUX.2 references need none) is one more ``Adapter`` and a ``LeasePlan`` field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import InvalidRequest, ModelUnavailable
from studio.models.registry import ModelEntry


@dataclass
class AdapterContext:
    """One adapter kind, one lease."""

    entry: ModelEntry
    placement: str                        # the model's placement: cpu | gpu | model_offload | ...
    state: dict                           # this kind's memory for this model, across leases
    use: Callable[..., Any]               # use(kind, path, on_accelerator=False): a cached component, pinned
    changed: Callable[[], None]           # call when the model's own bytes changed (adapter layers in it)
    place: Callable[[Any], None]          # re-install the model's offload hooks on a pipeline
    device: str = "cpu"                   # where the pipeline computes
    saved: dict = field(default_factory=dict)   # what apply changed, for reset (this lease only)
    plan: Any = None                      # the lease's LeasePlan (options beside the kind's part)
    base: Any = None                      # the model's base pipeline (every task pipeline shares its modules)
    stats: dict = field(default_factory=dict)   # the manager's counters (e.g. lora_loads)


class Adapter:
    """One kind of per-lease adapter. Subclasses set ``field`` and implement apply / reset."""

    field: str = ""

    def part(self, plan) -> tuple:  # noqa: ANN001 - LeasePlan
        return tuple(getattr(plan, self.field, ()) or ()) if plan is not None else ()

    def wants(self, plan, state: dict, nested: bool) -> bool:  # noqa: ANN001, ARG002 - LeasePlan
        """Whether a lease with ``plan`` must run ``apply`` (and so has the model to itself), given
        this kind's ``state`` for the model and whether the lease is nested in another of the same
        thread. By default: when the plan names this kind."""
        return bool(self.part(plan))

    def apply(self, ctx: AdapterContext, pipe, part: tuple) -> None:
        raise NotImplementedError

    def reset(self, ctx: AdapterContext, pipe, part: tuple) -> None:
        raise NotImplementedError


def adapter_name(path: str | Path) -> str:
    """A stable adapter name per file version: its stem plus a hash of the resolved path, size and
    mtime (a file replaced in place is a new adapter, not the old weights under its name)."""
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
        version = f"{resolved}|{stat.st_size}|{stat.st_mtime_ns}"
    except OSError:
        version = str(resolved)
    stem = "".join(c if c.isalnum() else "_" for c in Path(path).stem)[:40]
    return f"{stem}_{hashlib.sha1(version.encode()).hexdigest()[:8]}"


_MISSING = object()
_DENOISER_ATTRS = ("encoder_hid_proj", "image_proj", "text_encoder_hid_proj")


def _denoiser(pipe):
    return pipe.transformer if getattr(pipe, "transformer", None) is not None else pipe.unet


class IPAdapter(Adapter):
    """``plan.ip_adapters``: ((folder, scale), ...), one entry per image prompt, in request order.

    A folder holds one ``*.safetensors`` (h94 or XLabs layout) and ``image_encoder/``; both are
    cached components, so a second lease reads nothing from disk. ``apply`` registers the encoder
    on the leased pipeline, loads the state dicts with ``load_ip_adapter`` (the attention
    processors take the cached tensors as they are: no copy) and sets one scale per adapter.
    ``reset`` puts back the very processor objects, projection and encoder that were there before,
    which is exact by construction (``unload_ip_adapter`` would install new default processors).
    """

    field = "ip_adapters"

    def apply(self, ctx: AdapterContext, pipe, part: tuple) -> None:
        from diffusers.loaders import FluxIPAdapterMixin, IPAdapterMixin

        if not isinstance(pipe, FluxIPAdapterMixin | IPAdapterMixin):
            raise ModelUnavailable(f"{type(pipe).__name__} ({ctx.entry.family.label}) cannot load IP-Adapters "
                                   "through the studio yet")
        folders = [Path(folder) for folder, _ in part]
        encoder_dir = _shared_encoder(folders)
        states = [ctx.use("ip_adapter", f, on_accelerator=ctx.placement == "gpu") for f in folders]
        encoder = ctx.use("image_encoder", encoder_dir,
                          on_accelerator=ctx.placement not in ("cpu", "model_offload"))
        denoiser = _denoiser(pipe)
        ctx.saved.update(procs=dict(denoiser.attn_processors),
                         attrs={a: getattr(denoiser, a, _MISSING) for a in _DENOISER_ATTRS},
                         hid_type=denoiser.config.get("encoder_hid_dim_type"),
                         encoder=getattr(pipe, "image_encoder", None),
                         extractor=getattr(pipe, "feature_extractor", None))
        pipe.register_modules(image_encoder=encoder)
        n = len(states)
        where = ({"image_encoder_pretrained_model_name_or_path": None} if isinstance(pipe, FluxIPAdapterMixin)
                 else {"subfolder": [""] * n, "image_encoder_folder": None})
        try:
            pipe.load_ip_adapter(list(states), weight_name=[""] * n, **where)
        except (ValueError, KeyError, RuntimeError) as err:
            names = ", ".join(f.name for f in folders)
            raise ModelUnavailable(f"IP-Adapter {names} does not fit {ctx.entry.label} "
                                   f"({ctx.entry.family.label}): {err}") from err
        scales = [float(scale) for _, scale in part]
        pipe.set_ip_adapter_scale(scales[0] if n == 1 else scales)
        if ctx.placement == "model_offload":
            ctx.place(pipe)                   # the offload hooks take the encoder into their sequence
        elif ctx.placement in ("group_offload", "sequential_offload"):
            _onload_new_modules(denoiser, ctx)

    def reset(self, ctx: AdapterContext, pipe, part: tuple) -> None:
        saved = ctx.saved
        if not saved:
            return
        denoiser = _denoiser(pipe)
        denoiser.set_attn_processor(saved["procs"])
        for name, value in saved["attrs"].items():
            if value is _MISSING:
                if hasattr(denoiser, name):
                    delattr(denoiser, name)
            else:
                setattr(denoiser, name, value)
        if denoiser.config.get("encoder_hid_dim_type") != saved["hid_type"]:
            denoiser.config.encoder_hid_dim_type = saved["hid_type"]
        encoder = getattr(pipe, "image_encoder", None)
        if encoder is not None and hasattr(encoder, "_hf_hook"):     # offload hooks took it in
            from accelerate.hooks import remove_hook_from_module

            remove_hook_from_module(encoder, recurse=True)
        pipe.register_modules(image_encoder=saved["encoder"], feature_extractor=saved["extractor"])
        saved.clear()
        if ctx.placement == "model_offload":
            ctx.place(pipe)                   # the hook chain again, without the encoder


def _shared_encoder(folders: list[Path]) -> Path:
    """Every adapter of one call goes through one image encoder (diffusers registers one per
    pipeline): the first folder's, and the others must have the same (config and file sizes)."""
    dirs = [f / "image_encoder" for f in folders]
    for d in dirs:
        if not (d / "config.json").is_file():
            raise ModelUnavailable(f"IP-Adapter {d.parent} has no image_encoder/ (a vision model saved with "
                                   "save_pretrained): put the encoder it was trained with there")

    def signature(d: Path) -> tuple:
        return ((d / "config.json").read_text(encoding="utf-8"),
                sorted((p.name, p.stat().st_size) for p in d.glob("*.safetensors")))

    first = signature(dirs[0])
    for d in dirs[1:]:
        if d != dirs[0] and signature(d) != first:
            raise InvalidRequest("image_prompts", f"IP-Adapters {dirs[0].parent.name} and {d.parent.name} use "
                                                  "different image encoders; one call can use one encoder")
    return dirs[0]


def _onload_new_modules(denoiser, ctx: AdapterContext) -> None:
    """Group offload hooked the blocks before the adapter existed: its projection and layers
    would stay on the CPU. They go to the accelerator for the lease (dropped at reset)."""
    import torch

    device = torch.device(ctx.device)
    proj = getattr(denoiser, "encoder_hid_proj", None)
    if proj is not None:
        proj.to(device)
    for proc in denoiser.attn_processors.values():
        if isinstance(proc, torch.nn.Module) and any(True for _ in proc.parameters()):
            proc.to(device)

