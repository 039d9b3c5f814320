"""Wires the real services from Settings (app.py and the tests' server use it)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.exc import DBAPIError

from studio import hosting
from studio.config import Settings
from studio.errors import StorageError
from studio.gallery.sink import GallerySink
from studio.models.loader import Loader
from studio.models.manager import ModelManager
from studio.models.memory import GB, Device, default_cpu_budget, pick_device, pick_dtype
from studio.models.registry import Registry
from studio.public import PublicMode
from studio.service import Studio
from studio.startup import OUTPUTS_FIX, check_outputs_dir


def build_studio(settings: Settings) -> Studio:
    device = pick_device(settings.device)
    dtype = pick_dtype(device, settings.dtype)
    registry = Registry(settings)
    loader = Loader(dtype=dtype, device=device, offline=settings.offline,
                    builtin_dir=settings.cache_dir / "builtin", quantize=settings.quantize,
                    compile_dir=settings.cache_dir / "inductor" if settings.compile else None)
    models = ModelManager(loader, device=Device(device), cpu_budget=default_cpu_budget(settings.cpu_budget_gb),
                          gpu_reserve=int(settings.gpu_reserve_gb * GB), placement=settings.placement)
    sink = open_gallery(settings.outputs_dir)
    public = PublicMode.create(settings.limits, settings.concurrency) if settings.public else None
    return Studio(registry, models, sink, device_label=f"{device} · {str(dtype).removeprefix('torch.')}",
                  gpu=hosting.gpu_runner(), public=public)


def open_gallery(outputs_dir: Path) -> GallerySink:
    """The outputs folder (created if missing) and its gallery, or a StorageError naming the folder."""
    check_outputs_dir(outputs_dir)
    try:
        return GallerySink.open(outputs_dir)
    except (OSError, DBAPIError) as err:
        reason = getattr(err, "orig", None) or getattr(err, "strerror", None) or type(err).__name__
        raise StorageError(f"cannot open the gallery {outputs_dir / 'gallery.db'}: {reason}. Move that file away "
                           f"to start a new gallery. {OUTPUTS_FIX}") from err
