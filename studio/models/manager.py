"""Leases pipelines and their components under a memory budget; shares weights across tasks.

``with manager.lease(entry, task, plan) as pipe:`` yields a ready pipeline. While the block runs
the model and the components it uses are *pinned*: never demoted, dropped or re-placed. Between
leases base models and components (ControlNets, IP-Adapters, image encoders, preprocessors)
sit in one LRU over two tiers (LoRAs live inside the model that uses them: ``lora_adapter.py``):

- **accelerator** (VRAM): room = ``device.free() - reserve``. What needs room demotes the least
  recently used unpinned models *and components* that hold VRAM to the CPU.
- **CPU RAM**: the measured bytes of what is on the CPU stay within ``cpu_budget``. Over it, the
  least recently used unpinned model, then component, is dropped (its tensors freed).

Sizes are measured from the loaded tensors; before a load, the file sizes stand in. Placement per
model (``placement.choose``): forced, or from size vs room. An ``OutOfMemoryError`` while placing
or running evicts every unpinned entry and moves on to the next lighter placement, once.

Task pipelines (img2img, inpaint, ControlNet) are derived from the base with ``from_pipe``: same
tensors, nothing loaded. Adapters that rewire the shared transformer/UNet (LoRAs, IP-Adapters:
``adapters.py``) are applied per lease; a lease that changes them has the model to itself (plain
leases of it wait, and it waits for them), since every sibling shares those modules.

Threads: one condition lock guards the bookkeeping and is never held during a disk load. Two
requests for one model or component wait for one load; a load that fails leaves nothing behind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from studio.errors import InvalidRequest, ModelUnavailable, OutOfMemory, StudioError
from studio.models.adapters import Adapter, AdapterContext, IPAdapter
from studio.models.components import ComponentCache
from studio.models.lora_adapter import LoraAdapter, LoraRow
from studio.models.memory import Device, component_bytes, fmt_bytes, pipeline_bytes
from studio.models.placement import PLACEMENTS, Placer
from studio.models.registry import ModelEntry
from studio.models.tiers import CPU, DISK, GPU, OFFLOAD, CachedComponent, CachedModel, Slot, Tiers
from studio.requests import Task

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LeasePlan:
    """What a lease needs besides the base model: ControlNets (paths, in unit order), IP-Adapters
    ((folder, scale) pairs) and LoRAs ((path, weight) pairs). Each is a cached component."""

    controlnets: tuple[str, ...] = ()
    union: tuple[bool, ...] = ()            # per ControlNet: a union net (it takes a control mode)
    modes: tuple[int, ...] = ()             # per ControlNet: the number of its unit's mode (-1: not a union net)
    shared: bool = False                    # every unit runs through one union net: load and run it once
    union_pipes: bool = False               # the nets are the family's union class (SDXL: its own pipelines)
    ip_adapters: tuple[tuple[str, float], ...] = ()
    loras: tuple[tuple[str, float], ...] = ()
    fuse_loras: bool = False                # fuse the LoRA mix into the weights (faster steps; see lora_adapter)


@dataclass(eq=False)
class _Lease:
    slot: Slot
    comps: list = field(default_factory=list)      # components pinned by this lease
    applied: list = field(default_factory=list)    # (adapter, context, part), in apply order
    wanted: list = field(default_factory=list)     # adapters this lease must apply (decided at the gate)
    alone: bool = False
    entered: bool = False
    pipe: Any = None


class ModelManager:
    def __init__(self, loader, *, device: Device | None = None, cpu_budget: int | None = None,
                 gpu_reserve: int = 1024 ** 3, placement: str = "auto", max_models: int | None = None,
                 adapters: tuple[Adapter, ...] | None = None) -> None:
        from studio.models.memory import default_cpu_budget

        self._loader = loader
        self.device = device if device is not None else Device(getattr(loader, "device", "cpu"))
        if placement not in ("auto", *PLACEMENTS):
            raise InvalidRequest("placement", f"must be auto or one of {PLACEMENTS}, got {placement!r}")
        self.placement = placement
        self._tiers = Tiers(loader, self.device, max_models=max_models, gpu_reserve=int(gpu_reserve),
                            cpu_budget=int(cpu_budget) if cpu_budget is not None else default_cpu_budget(None))
        self._placer = Placer(loader, self._tiers, forced=placement, reload=self._reload)
        self._adapters = tuple(adapters) if adapters is not None else (LoraAdapter(), IPAdapter())
        self.adapter_stats: dict[str, int] = {}                      # e.g. lora_loads (tests, bench)
        self._slots = self._tiers.slots
        self._cond = threading.Condition(threading.RLock())
        self._components = ComponentCache(loader, self._tiers, self._cond)
        self.loads = 0                                                # disk loads done (tests, bench)

    @property
    def cpu_budget(self) -> int:
        return self._tiers.cpu_budget

    @property
    def gpu_reserve(self) -> int:
        return self._tiers.gpu_reserve

    # -- the lease --------------------------------------------------------------------------------
    @contextmanager
    def lease(self, entry: ModelEntry, task: Task | None = None, plan: LeasePlan | None = None) -> Iterator[Any]:
        """The ready pipeline for ``task`` (default: the family's base task, the loaded pipeline itself)
        with the plan's ControlNets and adapters; pinned (never evicted) until the block ends, when the
        adapters are reset.

        An ``OutOfMemoryError`` inside the block evicts every unpinned entry, switches this model
        to the next lighter placement for the next lease, and becomes ``OutOfMemory``.
        """
        task = entry.family.base_task if task is None else task
        lease = _Lease(self._acquire(entry))
        try:
            nets = plan.controlnets[:1] if plan and plan.shared else plan.controlnets if plan else ()
            for path in nets:
                self._components.pin(lease.comps, "controlnet", path, keep=lease.slot,
                                     controlnet_class=lease.slot.entry.family.controlnet_class)
            self._enter(lease, plan)
            lease.pipe = pipe = self._task_pipe(lease, task, plan or LeasePlan())
            self._apply_adapters(lease, pipe, plan)
        except BaseException:
            self._close(lease)
            raise
        try:
            yield pipe
        except torch.OutOfMemoryError as err:
            self._reset_adapters(lease)
            with self._cond:
                oom = self._placer.after_run_oom(lease.slot)
            raise oom from err
        finally:
            self._close(lease)

    def run(self, entry: ModelEntry, task: Task, fn: Callable[[Any], T], plan: LeasePlan | None = None) -> T:
        """``fn(pipe)`` under a lease; out of memory once -> the lighter placement, one retry."""
        try:
            with self.lease(entry, task, plan) as pipe:
                return fn(pipe)
        except OutOfMemory as first:
            if not getattr(first, "retryable", False):
                raise
            log.warning("%s; retrying once", first)
        with self.lease(entry, task, plan) as pipe:
            return fn(pipe)

    def load(self, entry: ModelEntry) -> CachedModel:
        """Load (or touch) a model without running it: the Models tab's Load button."""
        with self.lease(entry):
            pass
        return next(m for m in self.loaded() if m.id == entry.id)

    def _close(self, lease: _Lease) -> None:
        """Reset the adapters, leave the gate, unpin: each step runs even if one before it fails."""
        try:
            self._reset_adapters(lease)
        finally:
            with self._cond:
                slot = lease.slot
                if lease.entered:
                    slot.leave(threading.get_ident())
                    lease.entered = False
                slot.pins -= 1
                self._tiers.touch(slot)
                for comp in lease.comps:
                    comp.pins -= 1
                    self._tiers.touch(comp)
                lease.comps = []
                self._cond.notify_all()

    def _enter(self, lease: _Lease, plan: LeasePlan | None) -> None:
        """Adapters rewire modules every pipeline of the model shares: a lease that must change them
        (``Adapter.wants``: e.g. LoRAs left set by the last lease) has the model to itself. Decided
        here, under the lock, where no other lease can change them meanwhile."""
        me, slot = threading.get_ident(), lease.slot
        with self._cond:
            while True:
                nested = me in slot.holders
                lease.wanted = [a for a in self._adapters
                                if a.wants(plan, slot.adapters.get(a.field, {}), nested)]
                lease.alone = bool(lease.wanted)
                if slot.may_enter(me, lease.alone):
                    break
                self._cond.wait()
            slot.enter(me, lease.alone)
            lease.entered = True

    # -- acquiring: one load per model, waiters share it ---------------------------------------------
    def _acquire(self, entry: ModelEntry) -> Slot:
        with self._cond:
            slot = self._slots.get(entry.id)
            if slot is not None:
                slot.pins += 1
                self._tiers.touch(slot)
                self._slots.move_to_end(entry.id)
                while slot.state == "loading":
                    self._cond.wait()
                if slot.state == "failed":
                    slot.pins -= 1
                    err = slot.error
                    if isinstance(err, StudioError):
                        raise err
                    raise ModelUnavailable(f"{entry.label} failed to load: {err}") from err
                try:
                    self._placer.ensure(slot)
                except BaseException:
                    slot.pins -= 1
                    raise
                return slot
            slot = Slot(entry, pins=1)
            self._tiers.touch(slot)
            self._slots[entry.id] = slot
        try:
            self._load_into(slot)
        except BaseException as err:
            with self._cond:
                slot.state, slot.error = "failed", err
                slot.base, slot.tasks = None, {}
                if self._slots.get(entry.id) is slot:
                    del self._slots[entry.id]
                self._cond.notify_all()
            self.device.empty_cache()
            raise
        with self._cond:
            slot.state = "ready"
            self._cond.notify_all()
        return slot

    def _load_into(self, slot: Slot) -> None:
        entry = slot.entry
        estimate = int(self._loader.estimate_bytes(entry) or 0)
        with self._cond:
            slot.bytes = estimate                      # a reservation while loading (counted as RAM)
            self._tiers.make_ram_room(0, keep=slot)
            if getattr(self._loader, "quantize", "none") != "none":
                self._tiers.make_gpu_room(estimate, keep=slot)   # quantized weights land on the GPU while loading
            self._tiers.trim_count(keep=slot)
        t0 = time.perf_counter()
        try:
            base = self._loader.load(entry)
        except torch.OutOfMemoryError:                 # e.g. quantizing on the GPU: free VRAM, once more
            with self._cond:
                self._tiers.evict_all(keep=slot)
            try:
                base = self._loader.load(entry)
            except torch.OutOfMemoryError as err:
                raise OutOfMemory(f"out of memory loading {entry.label} even after freeing every cached model; "
                                  f"{self._placer.advice(None)}") from err
        self.loads += 1
        if hasattr(base, "set_progress_bar_config"):
            base.set_progress_bar_config(disable=True)
        sizes = component_bytes(base)          # one pass over the tensors, shared storages once
        with self._cond:
            slot.base = base
            slot.bytes = sum(sizes.values())
            slot.largest = max(sizes.values(), default=0)
            slot.load_seconds = time.perf_counter() - t0
            slot.placement, slot.parked = "cpu", True
            self._tiers.make_ram_room(0, keep=slot)          # the real size may exceed the estimate
            self._placer.ensure(slot)
        log.info("loaded %s: %s in %.1f s, %s", entry.id, fmt_bytes(slot.bytes), slot.load_seconds, slot.where)

    def _reload(self, slot: Slot) -> None:
        """Offload hooks that cannot be removed: drop the weights and read them again (rare)."""
        slot.base, slot.tasks, slot.hooked, slot.adapters = None, {}, None, {}
        self.device.empty_cache()
        slot.base = self._loader.load(slot.entry)
        self.loads += 1
        if hasattr(slot.base, "set_progress_bar_config"):
            slot.base.set_progress_bar_config(disable=True)
        slot.placement, slot.parked = "cpu", True

    # -- task pipelines and adapters -----------------------------------------------------------------
    def _task_pipe(self, lease: _Lease, task: Task, plan: LeasePlan):
        slot = lease.slot
        controlnets = [c for c in lease.comps if c.kind == "controlnet"]
        units = len(plan.controlnets)
        key = (task, tuple(id(c.obj) for c in controlnets), plan.shared and units > 1)
        with self._cond:
            if task is slot.entry.family.base_task and not controlnets:
                pipe = slot.base
            else:
                pipe = slot.tasks.get(key)
                if pipe is None:
                    extra = {}
                    if controlnets:
                        extra["controlnet"] = _controlnet_for(slot.entry, [c.obj for c in controlnets], units,
                                                              plan.union_pipes)
                    if plan.union_pipes:
                        extra["union"] = True
                    pipe = self._loader.derive(slot.base, slot.entry, task, bool(controlnets), **extra)
                    slot.tasks[key] = pipe
            if slot.hooked is not pipe and slot.placement not in ("cpu", "gpu") and slot.pins == 1:
                # offload hooks follow the pipeline's own model sequence (e.g. with its ControlNet)
                self._loader.place(pipe, slot.placement)
                slot.hooked = pipe
            elif slot.placement == "gpu" and controlnets:
                # the ControlNets go where the model is, and count in the VRAM tier from now on
                self._tiers.make_gpu_room(sum(c.bytes for c in controlnets if c.where != GPU), keep=slot)
                self._loader.place(pipe, "gpu")
                for comp in controlnets:
                    comp.where = GPU
        return pipe

    def _apply_adapters(self, lease: _Lease, pipe, plan: LeasePlan | None) -> None:
        slot = lease.slot
        for adapter in lease.wanted:
            part = adapter.part(plan)
            ctx = AdapterContext(
                slot.entry, slot.placement, slot.adapters.setdefault(adapter.field, {}),
                use=lambda kind, path, on_accelerator=False: self._components.pin(
                    lease.comps, kind, path, keep=slot, on_accelerator=on_accelerator),
                changed=lambda: self._remeasure(slot), place=lambda p: self._rehook(slot, p),
                device=self.device.name, plan=plan, base=slot.base, stats=self.adapter_stats)
            lease.applied.append((adapter, ctx, part))     # a failed apply is reset too
            adapter.apply(ctx, pipe, part)

    def _reset_adapters(self, lease: _Lease) -> None:
        """Reset in reverse order; every adapter is reset even if one fails (the first error is raised)."""
        first: Exception | None = None
        while lease.applied:
            adapter, ctx, part = lease.applied.pop()
            try:
                adapter.reset(ctx, lease.pipe, part)
            except Exception as err:  # noqa: BLE001 - reset the others first
                first = first or err
        if first is not None:
            raise first

    def _rehook(self, slot: Slot, pipe) -> None:
        """Offload hooks again for ``pipe`` (an adapter registered or removed a component)."""
        with self._cond:
            self._loader.place(pipe, slot.placement)
            slot.hooked = pipe

    def _remeasure(self, slot: Slot) -> None:
        """The model's bytes again: its adapters' layers are in it; what an adapter holds beside it
        (``held_bytes``: e.g. the weights a fused LoRA changed, kept to restore them) counts too."""
        with self._cond:
            slot.bytes = pipeline_bytes(slot.base) + sum(int(s.get("held_bytes", 0)) for s in slot.adapters.values())

    # -- components: ControlNets, LoRAs, IP-Adapters, image encoders, preprocessors ------------------
    def component(self, kind: str, path, controlnet_class: str = "", *, build: Callable[[], Any] | None = None):
        """A component loaded once and cached by path (a preprocessor: by name, made by ``build()``)."""
        return self._components.get(kind, path, controlnet_class, build=build)

    def components(self) -> list[CachedComponent]:
        return self._components.rows()

    @property
    def lora_loads(self) -> int:                 # LoRA files loaded into models so far
        return self.adapter_stats.get("lora_loads", 0)

    def lora_rows(self) -> list[LoraRow]:
        """Every LoRA held by a cached model: its bytes, its weight in the current mix, fused or not."""
        with self._cond:
            return [row for slot in self._slots.values() if slot.state == "ready"
                    for row in LoraAdapter.rows(slot.entry.id, slot.adapters.get("loras", {}))]

    # -- what the UI asks ----------------------------------------------------------------------------
    def loaded(self) -> list[CachedModel]:
        with self._cond:
            return [CachedModel(s.entry.id, s.where,
                                s.placement + (" + compiled" if getattr(s.base, "studio_compiled", False) else ""),
                                s.bytes, s.pins > 0,
                                tuple(k[0].value + ("+controlnet" if k[1] else "") for k in s.tasks), s.load_seconds)
                    for s in self._slots.values() if s.state == "ready"]

    def where(self, model_id: str) -> str:
        with self._cond:
            slot = self._slots.get(model_id)
            return slot.where if slot is not None and slot.state == "ready" else DISK

    def unload(self, model_id: str) -> bool:
        """Drop a cached model. False when it is not cached; ``ModelUnavailable`` when in use."""
        with self._cond:
            slot = self._slots.get(model_id)
            if slot is None or slot.state != "ready":
                return False
            if slot.pins:
                raise ModelUnavailable(f"{slot.entry.label} is generating now; unload it when it is done")
            self._tiers.drop(slot)
        return True

    def release_all(self) -> None:
        """Drop every model and component that is not in use (after an out-of-memory, or on demand)."""
        with self._cond:
            self._tiers.evict_all(keep=None)

    def memory(self) -> dict[str, int | str]:
        """Free/total memory and what the cache holds in each tier (bytes)."""
        from studio.models.memory import ram_memory

        ram = ram_memory()
        with self._cond:
            out: dict[str, int | str] = {
                "device": self.device.name, "ram_free": ram.free, "ram_total": ram.total,
                "cpu_budget": self.cpu_budget, "cpu_cached": self._tiers.ram_used(),
                "gpu_cached": self._tiers.vram_used(), "gpu_reserve": self.gpu_reserve,
            }
        if self.device.accelerator:
            out["gpu_free"], out["gpu_total"] = self.device.free(), self.device.total()
        return out

    def estimate_bytes(self, entry: ModelEntry) -> int:
        """Bytes a model will take once loaded, from its files (0 when unknown)."""
        return int(self._loader.estimate_bytes(entry) or 0)

    def download(self, entry: ModelEntry, tqdm_class=None):
        """Fetch a hub model into the local cache (refused with the reason when offline)."""
        return self._loader.download(entry, tqdm_class=tqdm_class)


def _controlnet_for(entry: ModelEntry, nets: list, units: int, union_pipes: bool):
    """The ``controlnet`` a pipeline takes: one net; several at once (the family's multi class, or
    its union multi class); or one union net for several units (FLUX: a multi of that one net, which
    runs it once per mode; SDXL's union net takes every mode in one call)."""
    if len(nets) == 1 and (units == 1 or union_pipes):
        return nets[0]
    import diffusers
    import diffusers.models

    family = entry.family
    if union_pipes:
        return getattr(diffusers.models, family.multi_union_class)(nets)
    return getattr(diffusers, family.multi_controlnet_class)(nets)


__all__ = ["ModelManager", "LeasePlan", "CachedModel", "CachedComponent", "GPU", "OFFLOAD", "CPU", "DISK"]
