"""Where a model goes on the accelerator: the choice, what it needs, what to advise on failure
(pure functions of sizes and settings), and ``Placer``, which applies them to cached models
(``docs/models.md``, "Placement"); ``Loader.place`` puts a pipeline there.

Placements, heaviest first (``PLACEMENTS``):

- ``gpu``: every component on the accelerator (fastest; needs the whole model in VRAM)
- ``model_offload``: one component at a time on the accelerator (``enable_model_cpu_offload``)
- ``group_offload``: blocks streamed to the accelerator (``enable_group_offload``, block level)
- ``sequential_offload``: layer by layer (leaf-level group offload; slowest, least VRAM)
- ``cpu``: no accelerator; the pipeline runs where it was loaded
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from studio.errors import OutOfMemory
from studio.models.memory import fmt_bytes

__all__ = ["PLACEMENTS", "lighter", "streamed", "choose", "needs", "advice", "Placer"]
log = logging.getLogger(__name__)

PLACEMENTS = ("gpu", "model_offload", "group_offload", "sequential_offload")


def lighter(placement: str) -> str | None:
    """The next placement that needs less accelerator memory, or None."""
    if placement not in PLACEMENTS:
        return None
    i = PLACEMENTS.index(placement)
    return PLACEMENTS[i + 1] if i + 1 < len(PLACEMENTS) else None


def streamed(device: torch.device) -> dict:
    """Group offload options: on CUDA, pinned host memory and a side stream that copies the next
    group while this one runs (diffusers' ``use_stream``; 17-19x faster than without on an H100,
    ../shared/GPU.md). ``record_stream`` stays off: it saves a sync but can hold freed VRAM longer.
    Elsewhere (CPU, MPS) there is no stream to use."""
    return {"use_stream": True, "non_blocking": True} if device.type == "cuda" else {}


def choose(size: int, largest: int, room: int, *, accelerator: bool, forced: str = "auto") -> str:
    """The heaviest placement that fits ``room`` accelerator bytes (or the forced one).

    Whole on the GPU if the model fits, else model offload if its largest component fits, else
    group offload; ``cpu`` on a machine without an accelerator (``forced`` then means nothing).
    """
    if not accelerator:
        return "cpu"
    if forced != "auto":
        return forced
    if size <= room:
        return "gpu"
    if largest <= room:
        return "model_offload"
    return "group_offload"


def needs(placement: str, size: int, largest: int) -> int:
    """Accelerator bytes a placement takes up front (offloads stream what they need)."""
    return {"gpu": size, "model_offload": largest}.get(placement, 0)


def advice(placement: str | None, *, accelerator: bool, quantize: str = "none", device: str = "cpu") -> str:
    """What to change after an out-of-memory, lightest steps last."""
    if not accelerator:
        return ("try: a smaller width/height or batch size; a lower --cpu-budget-gb so fewer models stay "
                "cached; close other programs using RAM")
    steps = []
    if placement in (None, "gpu", "model_offload"):
        steps.append("start with --placement sequential_offload")
    steps.append("use a smaller width/height or batch size")
    if quantize == "none" and device.startswith("cuda"):
        steps.append("for FLUX, --quantize nf4")
    steps.append("close other programs using the GPU")
    return "try: " + "; ".join(steps)


class Placer:
    """Applies the choice to cached models, under the tiers' budgets; with the manager's lock held.

    An ``OutOfMemoryError`` while placing undoes the partial placement, evicts every unpinned
    entry and tries the next lighter placement once; after that ``OutOfMemory`` says what to do.
    """

    def __init__(self, loader, tiers, *, forced: str = "auto", reload: Callable[[Any], None]) -> None:
        self._loader, self._tiers, self.forced, self._reload = loader, tiers, forced, reload

    @property
    def _device(self):
        return self._tiers.device

    def ensure(self, slot) -> None:
        """``slot`` pinned and parked on an accelerator machine -> placed where it fits now."""
        if not self._device.accelerator or not slot.parked:
            return
        self.place(slot, choose(slot.bytes, slot.largest, self._tiers.gpu_room(keep=slot),
                                accelerator=True, forced=self.forced))

    def place(self, slot, placement: str, *, retried: bool = False) -> None:
        self._tiers.make_gpu_room(needs(placement, slot.bytes, slot.largest), keep=slot)
        try:
            self._loader.place(slot.base, placement)
        except torch.OutOfMemoryError as err:
            self.undo_partial(slot, placement)
            self._tiers.evict_all(keep=slot)
            nxt = lighter(placement)
            if retried or nxt is None:
                raise OutOfMemory(f"out of memory placing {slot.entry.label} ({fmt_bytes(slot.bytes)}) with "
                                  f"placement {placement}, after freeing every cached model; "
                                  f"{self.advice(placement)}") from err
            log.warning("out of memory placing %s as %s; trying %s", slot.entry.id, placement, nxt)
            self.place(slot, nxt, retried=True)
            return
        slot.placement, slot.parked, slot.hooked = placement, False, slot.base
        self._tiers.make_ram_room(0, keep=slot)

    def undo_partial(self, slot, placement: str) -> None:
        """After a failed ``place``: weights may be half on the GPU. Back to the CPU, or reload."""
        try:
            if self._loader.unplace(slot.base, placement):
                slot.placement, slot.parked = "cpu", True
                return
        except Exception:  # noqa: BLE001 - fall through to a reload
            log.exception("could not undo a partial placement of %s", slot.entry.id)
        self._reload(slot)

    def advice(self, placement: str | None) -> str:
        return advice(placement, accelerator=self._device.accelerator, device=self._device.name,
                      quantize=getattr(self._loader, "quantize", "none"))

    def after_run_oom(self, slot) -> OutOfMemory:
        """OOM inside a lease: free everything else, make this model lighter for the next lease."""
        self._tiers.evict_all(keep=slot)
        current = slot.placement
        nxt = lighter(current)
        if nxt is not None and slot.pins == 1:    # nobody else is running on it
            self.undo_partial(slot, current)
            try:
                self.place(slot, nxt, retried=True)
            except OutOfMemory as again:
                return again
            oom = OutOfMemory(f"out of memory running {slot.entry.label} with placement {current}; freed the "
                              f"other cached models and switched it to {nxt}. Run again; if it fails again, "
                              f"{self.advice(nxt)}")
            oom.retryable = True
            return oom
        self._device.empty_cache()
        return OutOfMemory(f"out of memory running {slot.entry.label} with placement {current}; {self.advice(current)}")
