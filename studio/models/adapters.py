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
    """``plan.ip_adapters``: ((source, scale, encoder, blocks), ...), one entry per image prompt, in
    request order (``encoder`` defaults to ``<source>/image_encoder``, ``blocks`` to "all").

    A source is a folder holding one ``*.safetensors`` (h94 or XLabs layout), or a catalog file on the
    hub (``hub:repo/file``); the encoder a folder or a hub folder. Both are cached components, shared
    by every adapter that names the same one, so a second lease reads nothing from disk. ``blocks``
    (SD/SDXL): "style", "layout" or "style_layout" puts the scale on those attention layers only
    (InstantStyle; ``block_scales``), "all" on every one. ``apply`` registers the encoder
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
        entries = [_entry(x) for x in part]
        folders = [source for source, *_ in entries]
        encoder_dir = _shared_encoder(folders, [encoder for _, _, encoder, _ in entries])
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
            names = ", ".join(_short(f) for f in folders)
            raise ModelUnavailable(f"IP-Adapter {names} does not fit {ctx.entry.label} "
                                   f"({ctx.entry.family.label}): {err}") from err
        scales = [block_scales(denoiser, float(scale), blocks) for _, scale, _, blocks in entries]
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


def _entry(item: tuple) -> tuple[str, float, str, str]:
    """(source, scale[, encoder[, blocks]]) -> all four (older plans name the folder and scale only)."""
    source, scale, *rest = item
    encoder = rest[0] if rest and rest[0] else str(Path(source) / "image_encoder")
    return str(source), float(scale), str(encoder), (rest[1] if len(rest) > 1 else "") or "all"


def _short(source: str) -> str:
    return source.removeprefix("hub:") if source.startswith("hub:") else Path(source).name


# InstantStyle's layers, by place among the UNet's blocks that have attentions: (up|down, which
# block, which transformer in it). SDXL: style = up block 0 transformer 1, layout = down block 2
# transformer 1; SD1.5 the same places (up block 1, down block 2). FLUX adapters take one scale.
BLOCK_PRESETS: dict[str, tuple[tuple[str, int, int], ...]] = {
    "all": (), "style": (("up", 0, 1),), "layout": (("down", -1, 1),),
    "style_layout": (("up", 0, 1), ("down", -1, 1)),
}


def block_scales(denoiser, scale: float, blocks: str):  # noqa: ANN001 - UNet or transformer
    """``scale`` on every layer ("all"), or diffusers' per-block dict with ``scale`` on the preset's
    layers and 0 elsewhere (``set_ip_adapter_scale``)."""
    if blocks not in BLOCK_PRESETS:
        raise InvalidRequest("image_prompts", f"unknown blocks {blocks!r}; one of {', '.join(BLOCK_PRESETS)}")
    if blocks == "all":
        return scale
    if not hasattr(denoiser, "up_blocks"):
        raise InvalidRequest("image_prompts", f"per-block scales ({blocks}) are for SD/SDXL UNets; "
                                              "FLUX adapters take one scale: use blocks \"all\"")
    per_block = {"down": denoiser.config.layers_per_block, "up": denoiser.config.layers_per_block + 1}
    out: dict = {}
    for side, which, layer in BLOCK_PRESETS[blocks]:
        blocks_of = denoiser.up_blocks if side == "up" else denoiser.down_blocks
        with_attn = [i for i, b in enumerate(blocks_of) if hasattr(b, "attentions")]
        n = per_block[side]
        layer = min(layer, n - 1)
        out.setdefault(side, {})[f"block_{with_attn[which]}"] = [scale if j == layer else 0.0 for j in range(n)]
    return out


def _shared_encoder(folders: list[str], encoders: list[str]) -> str:
    """Every adapter of one call goes through one image encoder (diffusers registers one per
    pipeline): the first adapter's, and the others must name the same one (a hub folder by its
    name; a local one by its config and file sizes)."""
    for source, d in zip(folders, encoders, strict=True):
        if not d.startswith("hub:") and not (Path(d) / "config.json").is_file():
            raise ModelUnavailable(f"IP-Adapter {_short(source)} has no image_encoder/ (a vision model saved with "
                                   "save_pretrained): put the encoder it was trained with there")

    def signature(d: str) -> tuple:
        if d.startswith("hub:"):
            return (d,)
        return ((Path(d) / "config.json").read_text(encoding="utf-8"),
                sorted((p.name, p.stat().st_size) for p in Path(d).glob("*.safetensors")))

    first = signature(encoders[0])
    for source, d in zip(folders[1:], encoders[1:], strict=True):
        if d != encoders[0] and signature(d) != first:
            raise InvalidRequest("image_prompts", f"IP-Adapters {_short(folders[0])} and {_short(source)} use "
                                                  "different image encoders; one call can use one encoder")
    return encoders[0]


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

