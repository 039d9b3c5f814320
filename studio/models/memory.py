"""Device facts: which device and dtype, free/total bytes, emptying caches.

The only module that asks ``torch.cuda`` / ``torch.mps`` anything; device and dtype are chosen
here, once, from the settings. ``Device`` is what the model manager budgets against; tests hand
in a ``FakeDevice`` with a few kilobytes of "VRAM".
"""

from __future__ import annotations

import gc
import os
import threading
from dataclasses import dataclass

import torch

from studio.errors import UnsupportedOnDevice

MB = 1024 ** 2
GB = 1024 ** 3


def pick_device(wanted: str = "auto") -> str:
    if wanted == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if wanted == "cuda" and not torch.cuda.is_available():
        raise UnsupportedOnDevice("--device cuda was asked for, but torch sees no CUDA GPU; "
                                  "use --device auto (falls back to the CPU) or install a CUDA build of torch")
    if wanted == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UnsupportedOnDevice("--device mps was asked for, but this machine has no Apple GPU; use --device auto")
    return wanted


def pick_dtype(device: str, wanted: str = "auto") -> torch.dtype:
    if wanted != "auto":
        dtype = getattr(torch, wanted)
        if device == "cpu" and dtype is torch.float16:
            raise UnsupportedOnDevice("float16 on the CPU is slow and unsupported by several ops; use --dtype float32 or bfloat16")
        return dtype
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


@dataclass(frozen=True, slots=True)
class DeviceMemory:
    device: str
    free: int
    total: int


def device_memory(device: str) -> DeviceMemory:
    if device.startswith("cuda"):
        free, total = torch.cuda.mem_get_info(torch.device(device))
        return DeviceMemory(device, int(free), int(total))
    return DeviceMemory("cpu", *_ram())


def _ram() -> tuple[int, int]:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.available), int(vm.total)
    except ImportError:  # pragma: no cover - psutil comes with gradio
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return pages // 2, pages


def empty_cache() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if getattr(torch, "mps", None) and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        torch.mps.empty_cache()


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers, each storage counted once."""
    seen: set[int] = set()
    total = 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        ptr = tensor.untyped_storage().data_ptr()
        if ptr in seen:
            continue
        seen.add(ptr)
        total += tensor.untyped_storage().nbytes()
    return total


def pipeline_bytes(pipe) -> int:
    seen_modules: set[int] = set()
    total = 0
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module) and id(component) not in seen_modules:
            seen_modules.add(id(component))
            total += module_bytes(component)
    return total


# -- devices the model manager budgets against ---------------------------------------------------
class Device:
    """Where pipelines run, and how much room it has now. Handed to the ModelManager.

    ``accelerator`` is False for the CPU: then there is no VRAM tier and every model lives in
    RAM. Tests hand in a ``FakeDevice`` with a budget of a few kilobytes.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.accelerator = not name.startswith("cpu")

    def free(self) -> int:
        return device_memory(self.name).free

    def total(self) -> int:
        return device_memory(self.name).total

    def empty_cache(self) -> None:
        empty_cache()

    def __repr__(self) -> str:
        return f"Device({self.name!r})"


class FakeDevice(Device):
    """An accelerator with a fixed capacity; ``used`` is what the fake pipelines placed on it.

    The manager never writes to it: whoever moves weights (a fake loader) calls ``alloc`` /
    ``release``, like CUDA's allocator would. ``oom_over`` makes ``alloc`` raise
    ``torch.OutOfMemoryError`` once more than that many bytes would be in use.
    """

    def __init__(self, total: int, *, name: str = "cuda", external: int = 0) -> None:
        super().__init__(name)
        self.accelerator = True
        self._total, self.used, self.external = total, 0, external
        self._lock = threading.Lock()

    def alloc(self, nbytes: int) -> None:
        with self._lock:
            if self.used + self.external + nbytes > self._total:
                raise torch.OutOfMemoryError(
                    f"fake: tried to allocate {nbytes} bytes with {self.free()} free of {self._total}")
            self.used += nbytes

    def release(self, nbytes: int) -> None:
        with self._lock:
            self.used = max(0, self.used - nbytes)

    def free(self) -> int:
        return self._total - self.used - self.external

    def total(self) -> int:
        return self._total

    def empty_cache(self) -> None:
        gc.collect()


def physical_ram() -> int:
    return _ram()[1]


def ram_memory() -> DeviceMemory:
    free, total = _ram()
    return DeviceMemory("cpu", free, total)


def default_cpu_budget(cpu_budget_gb: float | None) -> int:
    """Settings.cpu_budget_gb in bytes; None means half of the physical RAM."""
    if cpu_budget_gb is None:
        return physical_ram() // 2
    return int(cpu_budget_gb * GB)


def rss_bytes() -> int:
    """Resident set size of this process (what the bench and the Models tab report)."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # pragma: no cover
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def component_bytes(pipe) -> dict[str, int]:
    """Bytes per torch component of a pipeline (tensors shared between components counted once)."""
    out: dict[str, int] = {}
    seen: set[int] = set()
    for name, component in getattr(pipe, "components", {}).items():
        if isinstance(component, torch.nn.Module):
            total = 0
            for tensor in list(component.parameters()) + list(component.buffers()):
                storage = tensor.untyped_storage()
                if storage.data_ptr() in seen:
                    continue
                seen.add(storage.data_ptr())
                total += storage.nbytes()
            out[name] = total
    return out


def tensor_ptrs(pipe) -> set[int]:
    """data_ptr of every parameter and buffer: two pipelines sharing weights share these."""
    ptrs: set[int] = set()
    for component in getattr(pipe, "components", {}).values():
        if isinstance(component, torch.nn.Module):
            ptrs.update(t.data_ptr() for t in list(component.parameters()) + list(component.buffers()))
    return ptrs


def fmt_bytes(n: int | float | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("GB", GB), ("MB", MB), ("KB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"
