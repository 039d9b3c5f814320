"""The two memory tiers and what sits in them: cached models (``Slot``) and components
(``Component``: ControlNets, LoRA files, IP-Adapters, image encoders, preprocessors).

- **VRAM**: room = ``device.free() - reserve``. Making room demotes the least recently used
  unpinned models *and components* that hold VRAM to the CPU.
- **RAM**: what is on the CPU stays within ``cpu_budget``; over it, the least recently used
  unpinned model, then component, is dropped (its tensors freed).

One LRU clock for both kinds (``touch``). Pinned entries (in use by a lease) are never moved.
``Tiers`` keeps the bookkeeping; every method is called with the model manager's lock held.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from studio.errors import ModelUnavailable
from studio.models.memory import Device, fmt_bytes
from studio.models.registry import ModelEntry

log = logging.getLogger(__name__)

# Where a model or component is between leases (the Models tab shows these).
GPU, OFFLOAD, CPU, DISK = "GPU", "GPU+CPU (offload)", "CPU", "disk"


@dataclass(eq=False)
class Slot:
    """One cached model: its base pipeline, the task pipelines derived from it, where it is."""

    entry: ModelEntry
    state: str = "loading"             # loading | ready | failed
    base: Any = None
    tasks: dict = field(default_factory=dict)     # (task, controlnet ids) -> derived pipeline
    bytes: int = 0                     # measured once loaded; the estimate while loading
    largest: int = 0                   # biggest single component (what model offload needs)
    placement: str = "cpu"             # cpu | gpu | model_offload | group_offload | sequential_offload
    parked: bool = True                # True: weights on the CPU with no accelerator hooks
    pins: int = 0
    hooked: Any = None                 # which pipeline the offload hooks were installed from
    error: BaseException | None = None
    adapters: dict = field(default_factory=dict)  # per adapter kind: its memory (e.g. LoRAs loaded)
    holders: dict = field(default_factory=dict)   # thread id -> leases past the gate
    alone: int | None = None           # thread whose lease applies adapters (has the model to itself)
    used: int = 0                      # LRU tick, shared with components
    load_seconds: float = 0.0

    @property
    def where(self) -> str:
        if self.parked or self.placement == "cpu":
            return CPU
        return GPU if self.placement == "gpu" else OFFLOAD

    def vram(self) -> int:
        return self.bytes if self.where == GPU else 0

    def ram(self) -> int:
        return 0 if self.where == GPU else self.bytes

    # the gate: a lease that applies adapters has the model to itself (the same thread may nest)
    def may_enter(self, thread: int, alone: bool) -> bool:
        return self.alone in (None, thread) and not (alone and any(t != thread for t in self.holders))

    def enter(self, thread: int, alone: bool) -> None:
        self.holders[thread] = self.holders.get(thread, 0) + 1
        if alone:
            self.alone = thread

    def leave(self, thread: int) -> None:
        self.holders[thread] -= 1
        if not self.holders[thread]:
            del self.holders[thread]
            if self.alone == thread:
                self.alone = None


@dataclass(frozen=True, slots=True)
class CachedModel:
    """One row of ``ModelManager.loaded()``: a plain record the UI may hold."""

    id: str
    where: str
    placement: str
    bytes: int
    in_use: bool
    tasks: tuple[str, ...]
    load_seconds: float


@dataclass(eq=False)
class Component:
    kind: str
    path: str
    obj: Any
    bytes: int
    pins: int = 0
    where: str = CPU                   # GPU | CPU
    key: str = ""
    used: int = 0

    def vram(self) -> int:
        return self.bytes if self.where == GPU else 0

    def ram(self) -> int:
        return 0 if self.where == GPU else self.bytes


class CachedComponent(NamedTuple):
    """One row of ``ModelManager.components()``: a plain record the UI may hold."""

    kind: str
    path: str
    bytes: int
    in_use: bool
    where: str


def component_key(kind: str, path: str | Path) -> str:
    """Files by resolved path; preprocessors by their name."""
    if kind == "preprocessor" or str(path).startswith("hub:"):
        return f"{kind}:{path}"
    return f"{kind}:{Path(path).expanduser().resolve()}"


def object_bytes(obj: Any) -> int:
    """Bytes of a module, a (nested) dict of tensors, or an object holding modules (a detector)."""
    from studio.models.memory import module_bytes

    if isinstance(obj, torch.nn.Module):
        return module_bytes(obj)
    if isinstance(obj, torch.Tensor):
        return obj.untyped_storage().nbytes()
    if isinstance(obj, dict):
        return sum(object_bytes(v) for v in obj.values())
    return sum(module_bytes(v) for v in getattr(obj, "__dict__", {}).values() if isinstance(v, torch.nn.Module))


class Tiers:
    def __init__(self, loader, device: Device, *, cpu_budget: int, gpu_reserve: int,
                 max_models: int | None = None) -> None:
        self._loader, self.device = loader, device
        self.cpu_budget, self.gpu_reserve, self.max_models = cpu_budget, gpu_reserve, max_models
        self.slots: OrderedDict[str, Slot] = OrderedDict()          # oldest first
        self.components: OrderedDict[str, Component] = OrderedDict()
        self._ticks = itertools.count(1)

    def touch(self, item: Slot | Component) -> None:
        item.used = next(self._ticks)

    # -- what is where ------------------------------------------------------------------------------
    def ram_used(self) -> int:
        return sum(s.ram() for s in self.slots.values()) + sum(c.ram() for c in self.components.values())

    def vram_used(self) -> int:
        return sum(s.vram() for s in self.slots.values()) + sum(c.vram() for c in self.components.values())

    def unpinned(self, keep: Slot | None = None) -> list[Slot]:
        return [s for s in self.slots.values() if s is not keep and s.pins == 0 and s.state == "ready"]

    def gpu_room(self, keep: Slot | None = None) -> int:
        """Accelerator bytes free now plus what demoting unpinned entries would give, minus the reserve."""
        movable = sum(s.vram() for s in self.unpinned(keep)) + \
            sum(c.vram() for c in self.components.values() if c.pins == 0)
        return self.device.free() + movable - self.gpu_reserve

    # -- making room --------------------------------------------------------------------------------
    def make_gpu_room(self, needed: int, keep: Slot | None) -> None:
        """Demote least recently used unpinned models and components until ``needed`` fits."""
        if not self.device.accelerator or needed <= 0:
            return
        victims = [s for s in self.unpinned(keep) if s.vram()] + \
            [c for c in self.components.values() if c.pins == 0 and c.vram()]
        for victim in sorted(victims, key=lambda v: v.used):
            if self.device.free() - self.gpu_reserve >= needed:
                return
            if isinstance(victim, Component):
                self.demote_component(victim)
            else:
                self.demote(victim)

    def make_ram_room(self, needed: int, keep: Slot | None) -> None:
        """Drop LRU unpinned models (then unpinned components) that hold RAM until RAM use + needed
        fits the budget (what sits on the GPU frees no RAM by going)."""
        for victim in self.unpinned(keep):
            if self.ram_used() + needed <= self.cpu_budget:
                return
            if victim.ram():
                self.drop(victim)
        for key, comp in list(self.components.items()):
            if self.ram_used() + needed <= self.cpu_budget:
                return
            if comp.pins == 0 and comp.where == CPU:
                self.drop_component(key)
        if self.ram_used() + needed > self.cpu_budget:
            log.warning("models in use need %s of RAM, over the %s budget", fmt_bytes(self.ram_used() + needed),
                        fmt_bytes(self.cpu_budget))

    def trim_count(self, keep: Slot) -> None:
        for victim in self.unpinned(keep):
            if self.max_models is None or len(self.slots) <= self.max_models:
                return
            self.drop(victim)

    def evict_all(self, keep: Slot | None) -> None:
        for victim in self.unpinned(keep):
            self.drop(victim)
        for key, comp in list(self.components.items()):
            if comp.pins == 0:
                self.drop_component(key)
        self.device.empty_cache()

    # -- models -------------------------------------------------------------------------------------
    def demote(self, slot: Slot) -> None:
        """GPU -> CPU (kept, cheap to promote again); when the RAM budget has no room, dropped."""
        if self.ram_used() + slot.bytes > self.cpu_budget:
            self.make_ram_room(slot.bytes, keep=slot)
        if self.ram_used() + slot.bytes > self.cpu_budget:
            self.drop(slot)
            return
        if self._loader.unplace(slot.base, slot.placement):
            slot.placement, slot.parked = "cpu", True
            log.info("demoted %s to the CPU", slot.entry.id)
        else:
            self.drop(slot)
        self.device.empty_cache()

    def drop(self, slot: Slot) -> None:
        if self.slots.get(slot.entry.id) is slot:
            del self.slots[slot.entry.id]
        slot.base, slot.tasks, slot.hooked = None, {}, None
        slot.state = "failed"
        slot.error = ModelUnavailable(f"{slot.entry.label} was evicted; request it again")
        log.info("dropped %s (%s)", slot.entry.id, fmt_bytes(slot.bytes))
        self.device.empty_cache()

    # -- components ---------------------------------------------------------------------------------
    def promote_component(self, comp: Component, keep: Slot | None) -> None:
        """CPU -> accelerator (the caller pinned it), after making room for it."""
        if not self.device.accelerator or comp.where == GPU:
            return
        self.make_gpu_room(comp.bytes, keep=keep)
        comp.obj, comp.where = self._loader.place_component(comp.obj), GPU

    def demote_component(self, comp: Component) -> None:
        """GPU -> CPU, or dropped when the RAM budget has no room for it."""
        if self.ram_used() + comp.bytes > self.cpu_budget:
            self.make_ram_room(comp.bytes, keep=None)
        if self.components.get(comp.key) is not comp:
            return
        if self.ram_used() + comp.bytes > self.cpu_budget:
            self.drop_component(comp.key)
        else:
            comp.obj, comp.where = self._loader.unplace_component(comp.obj), CPU
            log.info("demoted %s %s to the CPU", comp.kind, comp.path)
        self.device.empty_cache()

    def drop_component(self, key: str) -> None:
        comp = self.components.pop(key, None)
        if comp is None:
            return
        for slot in self.slots.values():        # derived pipelines that hold a ControlNet go with it
            for k in [k for k in slot.tasks if id(comp.obj) in k[1]]:
                del slot.tasks[k]
        comp.obj = None                         # the record may outlive this call; the weights must not
