"""Leases pipelines under a memory budget; shares weights across tasks; swaps models GPU <-> CPU.

``with manager.lease(entry, task) as pipe:`` yields a ready pipeline. While the block runs the
model is *pinned*: it is never demoted, dropped or re-placed. Between leases every base model
sits in one LRU over two tiers:

- **accelerator** (VRAM): room = ``device.free() - reserve``. A model that needs room demotes the
  least recently used unpinned models that hold VRAM to the CPU (``pipe.to("cpu")``).
- **CPU RAM**: the models' measured bytes must stay within ``cpu_budget``. Over it, the least
  recently used unpinned model is dropped (its tensors freed: nothing else refers to them).

Sizes are measured from the loaded parameters and buffers (``memory.pipeline_bytes``); before a
load, the file sizes on disk stand in (``loader.estimate_bytes``) to make room ahead.

Placement per model (``loader.PLACEMENTS``): forced by ``placement`` or chosen from size vs room:
whole on the GPU if it fits, else model offload if its largest component fits, else group
offload (or sequential). An ``OutOfMemoryError`` while placing or running evicts every unpinned
model and moves on to the next lighter placement, once; after that ``OutOfMemory`` says what to
change.

Task pipelines (img2img, inpaint, ControlNet) are derived from the base with ``from_pipe``: same
tensors, nothing loaded. ControlNets, LoRAs and IP-Adapters are cached entries of their own
(``component``), counted in the RAM budget, pinned by the leases that use them.

Threads: one condition lock guards the bookkeeping and is never held during a disk load. Two
requests for one model wait for one load; loads of different models run side by side; a load
that fails leaves nothing behind (waiters get the error). The lock is held while weights move
between devices, so two threads never move the same weights at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from studio.errors import InvalidRequest, ModelUnavailable, OutOfMemory, StudioError
from studio.models.loader import PLACEMENTS, lighter
from studio.models.memory import Device, component_bytes, fmt_bytes, pipeline_bytes
from studio.models.registry import ModelEntry
from studio.requests import Task

log = logging.getLogger(__name__)
T = TypeVar("T")

# Where a model is between leases (the Models tab shows these).
GPU, OFFLOAD, CPU, DISK = "GPU", "GPU+CPU (offload)", "CPU", "disk"


@dataclass(frozen=True, slots=True)
class LeasePlan:
    """What a lease needs besides the base model: ControlNets (paths, in unit order), IP-Adapters
    ((folder, scale) pairs) and LoRAs ((path, weight) pairs). Each is a cached entry of its own
    (see ``ModelManager.component``)."""

    controlnets: tuple[str, ...] = ()
    union: tuple[bool, ...] = ()            # per ControlNet: a union net (it takes a control mode)
    ip_adapters: tuple[tuple[str, float], ...] = ()
    loras: tuple[tuple[str, float], ...] = ()


@dataclass(eq=False)
class _Slot:
    entry: ModelEntry
    state: str = "loading"             # loading | ready | failed
    base: Any = None
    tasks: dict = field(default_factory=dict)     # (task, controlnet keys) -> derived pipeline
    bytes: int = 0                     # measured once loaded; the estimate while loading
    largest: int = 0                   # biggest single component (what model offload needs)
    placement: str = "cpu"             # cpu | gpu | model_offload | group_offload | sequential_offload
    parked: bool = True                # True: weights on the CPU with no accelerator hooks
    pins: int = 0
    hooked: Any = None                 # which pipeline the offload hooks were installed from
    error: BaseException | None = None
    loras: set = field(default_factory=set)       # adapter names loaded into the base
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


@dataclass(eq=False)
class _Component:
    kind: str
    path: str
    obj: Any
    bytes: int
    pins: int = 0


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


def _component_key(kind: str, path: str | Path) -> str:
    return f"{kind}:{Path(path).expanduser().resolve()}"


def _adapter_name(path: str | Path) -> str:
    import hashlib

    resolved = str(Path(path).expanduser().resolve())
    stem = "".join(c if c.isalnum() else "_" for c in Path(path).stem)[:40]
    return f"{stem}_{hashlib.sha1(resolved.encode()).hexdigest()[:8]}"


class ModelManager:
    def __init__(self, loader, *, device: Device | None = None, cpu_budget: int | None = None,
                 gpu_reserve: int = 1024 ** 3, placement: str = "auto", max_models: int | None = None) -> None:
        from studio.models.memory import default_cpu_budget

        self._loader = loader
        self.device = device if device is not None else Device(getattr(loader, "device", "cpu"))
        self.cpu_budget = int(cpu_budget) if cpu_budget is not None else default_cpu_budget(None)
        self.gpu_reserve = int(gpu_reserve)
        if placement not in ("auto", *PLACEMENTS):
            raise InvalidRequest("placement", f"must be auto or one of {PLACEMENTS}, got {placement!r}")
        self.placement = placement
        self._max = max_models
        self._slots: OrderedDict[str, _Slot] = OrderedDict()       # LRU: oldest first
        self._components: OrderedDict[str, _Component] = OrderedDict()
        self._component_loading: dict[str, threading.Event] = {}
        self._cond = threading.Condition(threading.RLock())
        self.loads = 0                                                # disk loads done (tests, bench)

    # -- the lease --------------------------------------------------------------------------------
    @contextmanager
    def lease(self, entry: ModelEntry, task: Task = Task.TXT2IMG, plan: LeasePlan | None = None) -> Iterator[Any]:
        """The ready pipeline for ``task``; pinned (never evicted) until the block ends.

        An ``OutOfMemoryError`` inside the block evicts every unpinned model, switches this model
        to the next lighter placement for the next lease, and becomes ``OutOfMemory``.
        """
        slot = self._acquire(entry)
        comps: list[_Component] = []
        try:
            self._pin_components(plan, entry, comps)
            pipe = self._task_pipe(slot, task, plan, comps)
        except BaseException:
            self._unpin(slot, comps)
            raise
        try:
            yield pipe
        except torch.OutOfMemoryError as err:
            raise self._after_run_oom(slot, err) from err
        finally:
            try:
                self._reset_loras(slot, pipe, plan)
            finally:
                self._unpin(slot, comps)

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

    # -- acquiring: one load per model, waiters share it ---------------------------------------------
    def _acquire(self, entry: ModelEntry) -> _Slot:
        with self._cond:
            slot = self._slots.get(entry.id)
            if slot is not None:
                slot.pins += 1
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
                    self._ensure_placed(slot)
                except BaseException:
                    slot.pins -= 1
                    raise
                return slot
            slot = _Slot(entry, pins=1)
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

    def _load_into(self, slot: _Slot) -> None:
        entry = slot.entry
        estimate = int(self._loader.estimate_bytes(entry) or 0)
        with self._cond:
            slot.bytes = estimate                      # a reservation while loading (counted as RAM)
            self._make_ram_room(0, keep=slot)
            if getattr(self._loader, "quantize", "none") != "none":
                self._make_gpu_room(estimate, keep=slot)   # quantized weights land on the GPU while loading
            if self._max is not None:
                self._trim_count(keep=slot)
        t0 = time.perf_counter()
        try:
            base = self._loader.load(entry)
        except torch.OutOfMemoryError:                 # e.g. quantizing on the GPU: free VRAM, once more
            with self._cond:
                self._evict_all(keep=slot)
            try:
                base = self._loader.load(entry)
            except torch.OutOfMemoryError as err:
                raise OutOfMemory(f"out of memory loading {entry.label} even after freeing every cached model; "
                                  f"{self._advice(None)}") from err
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
            self._make_ram_room(0, keep=slot)          # the real size may exceed the estimate
            self._ensure_placed(slot)
        log.info("loaded %s: %s in %.1f s, %s", entry.id, fmt_bytes(slot.bytes), slot.load_seconds, slot.where)

    # -- placement ---------------------------------------------------------------------------------
    def choose_placement(self, size: int, largest: int, room: int) -> str:
        """Heaviest placement that fits ``room`` accelerator bytes (or the forced one)."""
        if not self.device.accelerator:
            return "cpu"
        if self.placement != "auto":
            return self.placement
        if size <= room:
            return "gpu"
        if largest <= room:
            return "model_offload"
        return "group_offload"

    def _gpu_room(self, keep: _Slot | None = None) -> int:
        """Accelerator bytes free now plus what demoting unpinned models would give, minus the reserve."""
        movable = sum(s.vram() for s in self._slots.values() if s is not keep and s.pins == 0)
        return self.device.free() + movable - self.gpu_reserve

    def _ensure_placed(self, slot: _Slot) -> None:
        """Called under the lock with ``slot`` pinned: parked on an accelerator machine -> placed."""
        if not self.device.accelerator or not slot.parked:
            return
        placement = self.choose_placement(slot.bytes, slot.largest, self._gpu_room(keep=slot))
        self._place(slot, placement)

    def _needs(self, slot: _Slot, placement: str) -> int:
        return {"gpu": slot.bytes, "model_offload": slot.largest}.get(placement, 0)

    def _place(self, slot: _Slot, placement: str, *, retried: bool = False) -> None:
        self._make_gpu_room(self._needs(slot, placement), keep=slot)
        try:
            self._loader.place(slot.base, placement)
        except torch.OutOfMemoryError as err:
            self._undo_partial(slot, placement)
            self._evict_all(keep=slot)
            nxt = lighter(placement)
            if retried or nxt is None:
                raise OutOfMemory(f"out of memory placing {slot.entry.label} ({fmt_bytes(slot.bytes)}) with "
                                  f"placement {placement}, after freeing every cached model; "
                                  f"{self._advice(placement)}") from err
            log.warning("out of memory placing %s as %s; trying %s", slot.entry.id, placement, nxt)
            self._place(slot, nxt, retried=True)
            return
        slot.placement, slot.parked, slot.hooked = placement, False, slot.base
        self._make_ram_room(0, keep=slot)

    def _undo_partial(self, slot: _Slot, placement: str) -> None:
        """After a failed ``place``: weights may be half on the GPU. Back to the CPU, or reload."""
        try:
            if self._loader.unplace(slot.base, placement):
                slot.placement, slot.parked = "cpu", True
                return
        except Exception:  # noqa: BLE001 - fall through to a reload
            log.exception("could not undo a partial placement of %s", slot.entry.id)
        self._reload(slot)

    def _reload(self, slot: _Slot) -> None:
        """Offload hooks that cannot be removed: drop the weights and read them again (rare)."""
        slot.base, slot.tasks, slot.hooked, slot.loras = None, {}, None, set()
        self.device.empty_cache()
        slot.base = self._loader.load(slot.entry)
        self.loads += 1
        if hasattr(slot.base, "set_progress_bar_config"):
            slot.base.set_progress_bar_config(disable=True)
        slot.placement, slot.parked = "cpu", True

    def _advice(self, placement: str | None) -> str:
        if not self.device.accelerator:
            return ("try: a smaller width/height or batch size; a lower --cpu-budget-gb so fewer models stay "
                    "cached; close other programs using RAM")
        steps = []
        if placement in (None, "gpu", "model_offload"):
            steps.append("start with --placement sequential_offload")
        steps.append("use a smaller width/height or batch size")
        if getattr(self._loader, "quantize", "none") == "none" and self.device.name.startswith("cuda"):
            steps.append("for FLUX, --quantize nf4")
        steps.append("close other programs using the GPU")
        return "try: " + "; ".join(steps)

    def _after_run_oom(self, slot: _Slot, err: BaseException) -> OutOfMemory:
        """OOM inside a lease: free everything else, make this model lighter for the next lease."""
        with self._cond:
            self._evict_all(keep=slot)
            current = slot.placement
            nxt = lighter(current)
            if nxt is not None and slot.pins == 1:    # nobody else is running on it
                self._undo_partial(slot, current)
                try:
                    self._place(slot, nxt, retried=True)
                except OutOfMemory as again:
                    return again
                oom = OutOfMemory(f"out of memory running {slot.entry.label} with placement {current}; freed the "
                                  f"other cached models and switched it to {nxt}. Run again; if it fails again, "
                                  f"{self._advice(nxt)}")
                oom.retryable = True
                return oom
        self.device.empty_cache()
        return OutOfMemory(f"out of memory running {slot.entry.label} with placement {current}; {self._advice(current)}")

    # -- making room -------------------------------------------------------------------------------
    def _unpinned_lru(self, keep: _Slot | None) -> list[_Slot]:
        return [s for s in self._slots.values() if s is not keep and s.pins == 0 and s.state == "ready"]

    def _make_gpu_room(self, needed: int, keep: _Slot | None) -> None:
        if not self.device.accelerator or needed <= 0:
            return
        for victim in self._unpinned_lru(keep):
            if self.device.free() - self.gpu_reserve >= needed:
                return
            if victim.vram():
                self._demote(victim)

    def _ram_used(self) -> int:
        return sum(s.ram() for s in self._slots.values()) + sum(c.bytes for c in self._components.values())

    def _make_ram_room(self, needed: int, keep: _Slot | None) -> None:
        """Drop LRU unpinned models (then unpinned components) until RAM use + needed fits the budget."""
        for victim in self._unpinned_lru(keep):
            if self._ram_used() + needed <= self.cpu_budget:
                return
            self._drop(victim)
        for key, comp in list(self._components.items()):
            if self._ram_used() + needed <= self.cpu_budget:
                return
            if comp.pins == 0:
                self._drop_component(key)
        if self._ram_used() + needed > self.cpu_budget:
            log.warning("models in use need %s of RAM, over the %s budget", fmt_bytes(self._ram_used() + needed),
                        fmt_bytes(self.cpu_budget))

    def _trim_count(self, keep: _Slot) -> None:
        for victim in self._unpinned_lru(keep):
            if len(self._slots) <= self._max:
                return
            self._drop(victim)

    def _demote(self, slot: _Slot) -> None:
        """GPU -> CPU (kept, cheap to promote again); when the RAM budget has no room, dropped."""
        if self._ram_used() + slot.bytes > self.cpu_budget:
            self._make_ram_room(slot.bytes, keep=slot)
        if self._ram_used() + slot.bytes > self.cpu_budget:
            self._drop(slot)
            return
        if self._loader.unplace(slot.base, slot.placement):
            slot.placement, slot.parked = "cpu", True
            log.info("demoted %s to the CPU", slot.entry.id)
        else:
            self._drop(slot)
        self.device.empty_cache()

    def _drop(self, slot: _Slot) -> None:
        if self._slots.get(slot.entry.id) is slot:
            del self._slots[slot.entry.id]
        slot.base, slot.tasks, slot.hooked = None, {}, None
        slot.state = "failed"
        slot.error = ModelUnavailable(f"{slot.entry.label} was evicted; request it again")
        log.info("dropped %s (%s)", slot.entry.id, fmt_bytes(slot.bytes))
        self.device.empty_cache()

    def _evict_all(self, keep: _Slot | None) -> None:
        for victim in self._unpinned_lru(keep):
            self._drop(victim)
        for key, comp in list(self._components.items()):
            if comp.pins == 0:
                self._drop_component(key)
        self.device.empty_cache()

    def _unpin(self, slot: _Slot, comps: list[_Component]) -> None:
        with self._cond:
            slot.pins -= 1
            for comp in comps:
                comp.pins -= 1
            self._cond.notify_all()

    # -- task pipelines -----------------------------------------------------------------------------
    def _task_pipe(self, slot: _Slot, task: Task, plan: LeasePlan | None, comps: list[_Component]):
        controlnets = [c for c in comps if c.kind == "controlnet"]
        key = (task, tuple(id(c.obj) for c in controlnets))
        with self._cond:
            if task is Task.TXT2IMG and not controlnets:
                pipe = slot.base
            else:
                pipe = slot.tasks.get(key)
                if pipe is None:
                    extra = {}
                    if controlnets:
                        extra["controlnet"] = controlnets[0].obj if len(controlnets) == 1 else \
                            _multi_controlnet(slot.entry, [c.obj for c in controlnets])
                    pipe = self._loader.derive(slot.base, slot.entry, task, bool(controlnets), **extra)
                    slot.tasks[key] = pipe
            if slot.hooked is not pipe and slot.placement not in ("cpu", "gpu") and slot.pins == 1:
                # offload hooks follow the pipeline's own model sequence (e.g. with its ControlNet)
                self._loader.place(pipe, slot.placement)
                slot.hooked = pipe
            elif slot.placement == "gpu" and controlnets:
                self._loader.place(pipe, "gpu")
        self._apply_loras(slot, pipe, plan)
        return pipe

    def _apply_loras(self, slot: _Slot, pipe, plan: LeasePlan | None) -> None:
        """Load each LoRA of the plan into the base once (adapter per file), then set this lease's mix."""
        if not plan or not plan.loras:
            return
        names, weights = [], []
        for path, weight in plan.loras:
            name = _adapter_name(path)
            if name not in slot.loras:
                state = self.component("lora", path)
                try:
                    pipe.load_lora_weights(dict(state), adapter_name=name)
                except (ValueError, KeyError, RuntimeError) as err:
                    raise ModelUnavailable(f"LoRA {Path(path).name} does not fit {slot.entry.label} "
                                           f"({slot.entry.family.label}): {err}") from err
                with self._cond:
                    slot.loras.add(name)
                    slot.bytes = pipeline_bytes(slot.base)     # the adapter layers live in the model now
            names.append(name)
            weights.append(float(weight))
        pipe.enable_lora()
        pipe.set_adapters(names, adapter_weights=weights)

    def _reset_loras(self, slot: _Slot, pipe, plan: LeasePlan | None) -> None:
        """After a lease the model is the base again: adapters stay loaded (cheap next time) but off."""
        if slot.loras and plan and plan.loras and hasattr(pipe, "disable_lora"):
            pipe.disable_lora()

    # -- components: ControlNets, LoRAs, IP-Adapters -------------------------------------------------
    def component(self, kind: str, path: str | Path, controlnet_class: str = ""):
        """A ControlNet model / LoRA or IP-Adapter state dict, loaded once and cached by path."""
        key = _component_key(kind, path)
        while True:
            with self._cond:
                comp = self._components.get(key)
                if comp is not None:
                    self._components.move_to_end(key)
                    return comp.obj
                event = self._component_loading.get(key)
                if event is None:
                    event = self._component_loading[key] = threading.Event()
                    break
            event.wait()
            with self._cond:
                if key not in self._components:   # the other load failed: raise our own error
                    break
        try:
            obj = self._loader.load_component(kind, path, controlnet_class)
            size = _object_bytes(obj)
            with self._cond:
                self._make_ram_room(size, keep=None)
                self._components[key] = _Component(kind, str(path), obj, size)
            return obj
        finally:
            with self._cond:
                done = self._component_loading.pop(key, None)
            if done is not None:
                done.set()

    def _pin_components(self, plan: LeasePlan | None, entry: ModelEntry, pinned: list[_Component]) -> None:
        """Load and pin the plan's ControlNets into ``pinned`` (the caller unpins them, even halfway)."""
        if not plan:
            return
        for path in plan.controlnets:
            self.component("controlnet", path, entry.family.controlnet_class)
            with self._cond:
                comp = self._components.get(_component_key("controlnet", path))
                if comp is None:
                    raise ModelUnavailable(f"ControlNet {path} was evicted while loading; try again")
                comp.pins += 1
                pinned.append(comp)

    def _drop_component(self, key: str) -> None:
        comp = self._components.pop(key, None)
        if comp is None:
            return
        for slot in self._slots.values():        # derived pipelines that hold a ControlNet go with it
            for k in [k for k in slot.tasks if id(comp.obj) in k[1]]:
                del slot.tasks[k]

    def components(self) -> list[tuple[str, str, int, bool]]:
        with self._cond:
            return [(c.kind, c.path, c.bytes, c.pins > 0) for c in self._components.values()]

    # -- what the UI asks ----------------------------------------------------------------------------
    def loaded(self) -> list[CachedModel]:
        with self._cond:
            return [CachedModel(s.entry.id, s.where, s.placement, s.bytes, s.pins > 0,
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
            self._drop(slot)
        return True

    def release_all(self) -> None:
        """Drop every model and component that is not in use (after an out-of-memory, or on demand)."""
        with self._cond:
            self._evict_all(keep=None)

    def memory(self) -> dict[str, int | str]:
        """Free/total memory and what the cache holds (bytes)."""
        from studio.models.memory import ram_memory

        ram = ram_memory()
        with self._cond:
            out: dict[str, int | str] = {
                "device": self.device.name, "ram_free": ram.free, "ram_total": ram.total,
                "cpu_budget": self.cpu_budget, "cpu_cached": self._ram_used(),
                "gpu_cached": sum(s.vram() for s in self._slots.values()), "gpu_reserve": self.gpu_reserve,
            }
        if self.device.accelerator:
            out["gpu_free"], out["gpu_total"] = self.device.free(), self.device.total()
        return out

    def summary(self) -> str:
        """One line for the Models tab: free/total memory and what the cache holds."""
        m = self.memory()
        parts = []
        if "gpu_total" in m:
            parts.append(f"{m['device']}: {fmt_bytes(m['gpu_free'])} free of {fmt_bytes(m['gpu_total'])} "
                         f"(models {fmt_bytes(m['gpu_cached'])}, reserve {fmt_bytes(m['gpu_reserve'])})")
        else:
            parts.append(f"device {m['device']} (no GPU: models run from RAM)")
        parts.append(f"RAM: {fmt_bytes(m['ram_free'])} free of {fmt_bytes(m['ram_total'])} "
                     f"(models {fmt_bytes(m['cpu_cached'])} of a {fmt_bytes(m['cpu_budget'])} budget)")
        return " · ".join(parts)

    def download(self, entry: ModelEntry, tqdm_class=None):
        """Fetch a hub model into the local cache (refused with the reason when offline)."""
        return self._loader.download(entry, tqdm_class=tqdm_class)

    def rows(self, entries: list[ModelEntry]) -> list[list]:
        """The Models tab's table: every registry entry, where it is now, its bytes and placement."""
        cached = {m.id: m for m in self.loaded()}
        out = []
        for entry in entries:
            m = cached.get(entry.id)
            if m is not None:
                where, size, placement = m.where + (" (in use)" if m.in_use else ""), fmt_bytes(m.bytes), m.placement
            else:
                where = DISK if entry.available and "not downloaded" not in entry.reason else \
                    ("not downloaded" if entry.available else "unavailable")
                try:
                    est = self._loader.estimate_bytes(entry)
                except Exception:  # noqa: BLE001 - a listing never fails
                    est = 0
                size, placement = (f"~{fmt_bytes(est)} on disk" if est else "?"), "-"
            out.append([entry.id, entry.family.label, entry.spec.kind, where, size, placement,
                        entry.reason or entry.where])
        return out

    ROW_HEADERS = ("model", "family", "source", "where now", "size", "placement", "location / note")

    def component_rows(self) -> list[list]:
        out = []
        for kind, path, nbytes, in_use in self.components():
            out.append([Path(path).name, kind, "component", CPU + (" (in use)" if in_use else ""),
                        fmt_bytes(nbytes), "-", path])
        return out


def _multi_controlnet(entry: ModelEntry, models: list):
    import diffusers

    return getattr(diffusers, entry.family.multi_controlnet_class)(models)


def _object_bytes(obj) -> int:
    if isinstance(obj, torch.nn.Module):
        from studio.models.memory import module_bytes

        return module_bytes(obj)
    if isinstance(obj, dict):
        return sum(t.numel() * t.element_size() for t in obj.values() if isinstance(t, torch.Tensor))
    return 0


__all__ = ["ModelManager", "LeasePlan", "CachedModel", "GPU", "OFFLOAD", "CPU", "DISK"]
