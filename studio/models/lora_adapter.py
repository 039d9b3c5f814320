"""LoRAs on a cached model: loaded once, mixed by weight, kept between leases, deleted when idle.

The plan's part is ``((path, weight), ...)``; ``plan.fuse_loras`` asks for the mix fused into the
weights. The model keeps its LoRA state between leases (``ctx.state``, one per model):

- ``loaded``: adapters in the model, each loaded once from its file (the slow part) and held once:
  the file's tensors go straight into the model's LoRA layers, no copy is cached beside them.
- ``active``: the mix set now (``set_adapters``), or () when LoRAs are off (``disable_lora``).
- ``fused``: the mix fused into the base weights (``fuse_lora``), with a CPU copy of every weight it
  changed, put back on unfuse so the base is exact again (fusing and unfusing in floating point
  is not).

A lease changes only what differs from its plan (``wants`` / ``apply``): the same mix costs nothing,
a weight change or a switch is one ``set_adapters`` (no load), a mix that changes unfuses first, a
lease without LoRAs switches them off. Every task pipeline shares the model's modules, so whatever
changes them has the model to itself (the manager's gate). Adapters not used for ``idle_seconds``,
or beyond ``max_loaded`` (least recently used first), are deleted (``delete_adapters``) at the next
change; the model's measured bytes follow (``ctx.changed``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from studio.errors import ModelUnavailable
from studio.models.adapters import Adapter, AdapterContext, adapter_name

FUSABLE = ("cpu", "gpu", "model_offload")     # group offload streams the weights: nothing stays to fuse into


class LoraRow(NamedTuple):
    """One LoRA held by a model (``ModelManager.lora_rows``): a plain record the UI may hold."""

    model_id: str
    path: str
    bytes: int
    weight: float | None                      # None: loaded but not in the current mix
    fused: bool


def _lora_modules(pipe) -> list[tuple[str, object]]:
    import torch

    names = getattr(pipe, "_lora_loadable_modules", ("transformer", "unet", "text_encoder", "text_encoder_2"))
    return [(n, getattr(pipe, n)) for n in names if isinstance(getattr(pipe, n, None), torch.nn.Module)]


def _tuner_layers(pipe, names: set[str]):
    """(component, module name, layer) for every LoRA layer that holds one of ``names``."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for comp, model in _lora_modules(pipe):
        for mod_name, module in model.named_modules():
            if isinstance(module, BaseTunerLayer) and names & set(getattr(module, "lora_A", {}) or {}):
                yield comp, mod_name, module


def adapter_bytes(pipe, name: str) -> int:
    """Bytes of the LoRA layers of adapter ``name`` in ``pipe``."""
    total = 0
    for _, _, module in _tuner_layers(pipe, {name}):
        for part in ("lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector"):
            holder = getattr(module, part, None)
            if holder is not None and name in holder:
                value = holder[name]
                tensors = value.parameters() if hasattr(value, "parameters") else [value]
                total += sum(t.numel() * t.element_size() for t in tensors)
    return total


class LoraAdapter(Adapter):
    field = "loras"

    def __init__(self, *, idle_seconds: float = 600.0, max_loaded: int = 8,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_seconds, self.max_loaded, self._clock = idle_seconds, max_loaded, clock

    # -- what a lease wants ---------------------------------------------------------------------
    def _desired(self, plan) -> tuple[tuple, bool]:  # noqa: ANN001
        """(the mix as (adapter name, weight) pairs, whether fusing is asked)."""
        mix = tuple((adapter_name(path), float(weight)) for path, weight in self.part(plan))
        return mix, bool(mix) and bool(getattr(plan, "fuse_loras", False))

    def _idle(self, state: dict, keep: set[str]) -> list[str]:
        loaded = state.get("loaded", {})
        now = self._clock()
        idle = [n for n, rec in loaded.items() if n not in keep and now - rec["used"] > self.idle_seconds]
        spare = sorted((n for n in loaded if n not in keep and n not in idle), key=lambda n: loaded[n]["used"])
        over = len(loaded) - len(idle) - self.max_loaded
        return idle + (spare[:over] if over > 0 else [])

    def wants(self, plan, state: dict, nested: bool) -> bool:  # noqa: ANN001
        same = self._desired(plan) == state.get("asked", ((), False))
        mix = self._desired(plan)[0]
        if nested:                                # a lease inside one of the same thread leaves its mix be
            return bool(mix) and not same
        return not same or bool(self._idle(state, {n for n, _ in mix}))

    # -- apply / reset -------------------------------------------------------------------------------
    def apply(self, ctx: AdapterContext, pipe, part: tuple) -> None:
        base = ctx.base if ctx.base is not None else pipe
        state = ctx.state
        loaded: dict = state.setdefault("loaded", {})
        asked = self._desired(ctx.plan)
        mix, fuse = asked[0], asked[1] and ctx.placement in FUSABLE
        paths = {adapter_name(path): str(path) for path, _ in part}
        ctx.saved["dirty"] = True
        changed = False
        if state.get("fused"):
            self._unfuse(base, state)
            changed = True
        now, unhooked = self._clock(), False
        for name, _ in mix:
            if name not in loaded:
                if ctx.placement == "model_offload" and not unhooked:
                    base.remove_all_hooks()    # else diffusers re-hooks the base itself, on its default device
                    unhooked = ctx.saved["unhooked"] = True
                self._load(ctx, base, name, paths[name])
                loaded[name] = {"path": paths[name], "bytes": adapter_bytes(base, name), "used": now}
                changed = True
            loaded[name]["used"] = now
        gone = self._idle(state, {n for n, _ in mix})
        if gone:
            base.delete_adapters(gone)
            for name in gone:
                loaded.pop(name, None)
            changed = True
        if mix:
            if state.get("disabled"):
                base.enable_lora()
                state["disabled"] = False
            base.set_adapters([n for n, _ in mix], adapter_weights=[w for _, w in mix])
            if fuse:
                self._fuse(base, state, {n for n, _ in mix})
                changed = True
        elif loaded and not state.get("disabled"):
            base.disable_lora()
            state["disabled"] = True
        state["active"], state["fused"], state["asked"] = mix, fuse, asked
        if unhooked:
            ctx.place(pipe)                # the offload hooks again, for the leased pipeline's own sequence
        if changed:
            ctx.changed()
        ctx.saved.pop("dirty", None)

    def reset(self, ctx: AdapterContext, pipe, part: tuple) -> None:
        """Only after a failed apply: LoRAs off and unfused, so the model is the base again."""
        if not ctx.saved.pop("dirty", None):
            return
        base = ctx.base if ctx.base is not None else pipe
        state = ctx.state
        if state.get("fused"):
            self._unfuse(base, state)
        if state.get("loaded") and hasattr(base, "disable_lora"):
            base.disable_lora()
            state["disabled"] = True
        if ctx.saved.pop("unhooked", None):
            ctx.place(pipe)
        state["active"], state["fused"], state["asked"] = (), False, ((), False)
        ctx.changed()

    # -- the parts --------------------------------------------------------------------------------
    def _load(self, ctx: AdapterContext, base, name: str, path: str) -> None:
        label = f"LoRA {Path(path).name}"
        try:
            base.load_lora_weights(path, adapter_name=name)
        except (ValueError, KeyError, RuntimeError, TypeError, IndexError) as err:
            self._discard(base, name)
            raise ModelUnavailable(f"{label} does not fit {ctx.entry.label} ({ctx.entry.family.label}): "
                                   f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from err
        if not any(name in names for names in base.get_list_adapters().values()) or not adapter_bytes(base, name):
            self._discard(base, name)
            raise ModelUnavailable(f"{label} does not fit {ctx.entry.label} ({ctx.entry.family.label}): none of its "
                                   "layers matches a layer of the model")
        ctx.stats["lora_loads"] = ctx.stats.get("lora_loads", 0) + 1

    @staticmethod
    def _discard(base, name: str) -> None:
        try:
            if any(name in names for names in base.get_list_adapters().values()):
                base.delete_adapters([name])
        except Exception:  # noqa: BLE001 - best effort; the load error is the one to report
            pass

    @staticmethod
    def _fuse(base, state: dict, names: set[str]) -> None:
        backups = {}
        for comp, mod_name, module in _tuner_layers(base, names):
            weight = module.get_base_layer().weight
            backups[(comp, mod_name)] = weight.detach().to("cpu", copy=True)
        comps = sorted({comp for comp, _ in backups})
        if comps:
            base.fuse_lora(components=comps, adapter_names=sorted(names))
        state["backups"] = backups
        state["held_bytes"] = sum(t.numel() * t.element_size() for t in backups.values())

    @staticmethod
    def _unfuse(base, state: dict) -> None:
        import torch

        backups = state.pop("backups", {}) or {}
        comps = sorted({comp for comp, _ in backups})
        if comps:
            base.unfuse_lora(components=comps)
        with torch.no_grad():
            for (comp, mod_name), saved in backups.items():
                getattr(base, comp).get_submodule(mod_name).get_base_layer().weight.copy_(saved)
        state["fused"], state["held_bytes"] = False, 0

    # -- what the UI shows ------------------------------------------------------------------------
    @staticmethod
    def rows(model_id: str, state: dict) -> list[LoraRow]:
        active = dict(state.get("active", ()))
        return [LoraRow(model_id, rec["path"], rec["bytes"], active.get(name), bool(state.get("fused")) and name in active)
                for name, rec in state.get("loaded", {}).items()]
