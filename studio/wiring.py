"""Wires the real services from Settings (app.py and the tests' server use it)."""

from __future__ import annotations

from studio.config import Settings
from studio.gallery.sink import GallerySink
from studio.models.loader import Loader
from studio.models.manager import ModelManager
from studio.models.memory import GB, Device, default_cpu_budget, pick_device, pick_dtype
from studio.models.registry import Registry
from studio.service import Studio


def build_studio(settings: Settings) -> Studio:
    device = pick_device(settings.device)
    dtype = pick_dtype(device, settings.dtype)
    registry = Registry(settings)
    loader = Loader(dtype=dtype, device=device, offline=settings.offline,
                    builtin_dir=settings.cache_dir / "builtin", quantize=settings.quantize)
    models = ModelManager(loader, device=Device(device), cpu_budget=default_cpu_budget(settings.cpu_budget_gb),
                          gpu_reserve=int(settings.gpu_reserve_gb * GB), placement=settings.placement)
    sink = GallerySink.open(settings.outputs_dir)
    return Studio(registry, models, sink, device_label=f"{device} · {str(dtype).removeprefix('torch.')}")
