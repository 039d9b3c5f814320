"""Fakes for the model manager: pipelines of a few kilobytes, a loader that counts, fails or OOMs."""

from __future__ import annotations

import threading
import time
import weakref

import torch

from studio.models.catalog import FAMILIES, ModelSpec
from studio.models.memory import Device, FakeDevice, component_bytes
from studio.models.tiers import object_bytes
from studio.models.registry import ModelEntry
from studio.requests import Task


def entry(model_id: str, family: str = "flux-schnell") -> ModelEntry:
    return ModelEntry(ModelSpec(model_id, family, f"/fake/{model_id}", kind="folder"), FAMILIES[family], True,
                      where=f"/fake/{model_id}")


class Blob(torch.nn.Module):
    """A module holding exactly ``nbytes`` of buffer."""

    def __init__(self, nbytes: int) -> None:
        super().__init__()
        self.register_buffer("w", torch.zeros(nbytes, dtype=torch.uint8))


class Weights(dict):
    """A state dict the fake device can track (a plain dict cannot be weakly referenced)."""

    def __init__(self, tensor) -> None:
        super().__init__(w=tensor)


class FakePipe:
    def __init__(self, name: str, sizes: dict[str, int] | None = None, components: dict | None = None,
                 task: Task = Task.TXT2IMG) -> None:
        self.name, self.task = name, task
        self.components = components if components is not None else {k: Blob(v) for k, v in sizes.items()}
        self.dtype = torch.float32

    def set_progress_bar_config(self, **_):
        pass


class FakeLoader:
    """``sizes``: model id -> component sizes. Placement allocates on the FakeDevice like CUDA would."""

    device = "cuda"
    quantize = "none"

    def __init__(self, device: FakeDevice | None, sizes: dict[str, dict[str, int]], *, delay: float = 0.0) -> None:
        self.fake_device, self.sizes, self.delay = device, sizes, delay
        self.loads: list[str] = []
        self.placed: list[tuple[str, str]] = []
        self.fail_load: dict[str, BaseException] = {}     # id -> raised midway through load
        self.oom_run_placements: set[str] = set()          # placements under which "running" OOMs
        self._on_gpu: dict[int, weakref.finalize] = {}    # freed when the pipe is, like CUDA memory
        self._lock = threading.Lock()
        self.component_bytes = 100                         # what a fake ControlNet holds

    def load(self, entry: ModelEntry):
        with self._lock:
            self.loads.append(entry.id)
        pipe = FakePipe(entry.id, self.sizes[entry.id])   # half-built: weights allocated
        time.sleep(self.delay)
        err = self.fail_load.get(entry.id)
        if err is not None:
            raise err
        return pipe

    def estimate_bytes(self, entry: ModelEntry) -> int:
        return sum(self.sizes.get(entry.id, {}).values())

    def place(self, pipe, placement: str) -> None:
        """``gpu``: every component not on the device yet is allocated there, one by one (a half
        placement stays half placed when the device runs out, as with CUDA)."""
        self.placed.append((pipe.name, placement))
        if placement == "gpu":
            for module in pipe.components.values():
                self._alloc(module)

    def unplace(self, pipe, placement: str) -> bool:
        for module in pipe.components.values():
            self._release(module)
        return placement != "group_offload"

    def place_component(self, obj):
        self._alloc(obj)
        return obj

    def unplace_component(self, obj):
        self._release(obj)
        return obj

    def on_gpu(self, obj) -> bool:
        final = self._on_gpu.get(id(obj))
        return final is not None and final.alive

    def _alloc(self, obj) -> None:
        if self.on_gpu(obj):
            return
        need = object_bytes(obj)
        self.fake_device.alloc(need)
        self._on_gpu[id(obj)] = weakref.finalize(obj, self.fake_device.release, need)

    def _release(self, obj) -> None:
        final = self._on_gpu.pop(id(obj), None)
        if final is not None:
            final()

    def derive(self, base, entry, task, controlled=False, **extra):
        comps = dict(base.components)
        comps.update(extra)
        return FakePipe(base.name, components=comps, task=task)

    def load_component(self, kind, path, controlnet_class="", *, build=None):
        time.sleep(self.delay)
        if build is not None:
            return build()
        return Blob(self.component_bytes) if kind == "controlnet" else Weights(torch.zeros(10))

    # what a run would need on the device under the pipe's current placement
    def run(self, pipe, placement: str) -> str:
        if placement in self.oom_run_placements:
            raise torch.OutOfMemoryError(f"fake OOM running with {placement}")
        return "image"


def largest(pipe) -> int:
    return max(component_bytes(pipe).values())


class PretendAccelerator(Device):
    """The CPU dressed as an accelerator with a given amount of free memory: the manager's real
    placement path (choice, diffusers offload calls, demotion) runs on real pipelines."""

    def __init__(self, free: int) -> None:
        super().__init__("cpu")
        self.accelerator, self._free = True, free

    def free(self) -> int:
        return self._free

    def total(self) -> int:
        return self._free
