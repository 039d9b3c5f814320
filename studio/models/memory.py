"""Device facts: which device and dtype, free/total bytes, emptying caches.

The only module that asks ``torch.cuda`` / ``torch.mps`` anything; device and dtype are chosen
here, once, from the settings.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch

from studio.errors import UnsupportedOnDevice


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
