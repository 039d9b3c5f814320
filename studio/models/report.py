"""The Models tab's table and memory line, from what the model manager reports.

Formatting only (no Gradio, no torch): ``rows`` for every registry entry, ``component_rows`` for
the cached ControlNets / LoRAs / IP-Adapters / image encoders / preprocessors, ``summary`` for
free/total memory and what the cache holds.
"""

from __future__ import annotations

from pathlib import Path

from studio.models.manager import DISK, ModelManager
from studio.models.memory import fmt_bytes
from studio.models.registry import ModelEntry

ROW_HEADERS = ("model", "family", "source", "where now", "size", "placement", "location / note")


def rows(models: ModelManager, entries: list[ModelEntry]) -> list[list]:
    """Every registry entry, where it is now, its bytes (measured, or "~size on disk") and placement."""
    cached = {m.id: m for m in models.loaded()}
    out = []
    for entry in entries:
        m = cached.get(entry.id)
        if m is not None:
            where, size, placement = m.where + (" (in use)" if m.in_use else ""), fmt_bytes(m.bytes), m.placement
        else:
            where = DISK if entry.available and "not downloaded" not in entry.reason else \
                ("not downloaded" if entry.available else "unavailable")
            try:
                est = models.estimate_bytes(entry)
            except Exception:  # noqa: BLE001 - a listing never fails
                est = 0
            size, placement = (f"~{fmt_bytes(est)} on disk" if est else "?"), "-"
        out.append([entry.id, entry.family.label, entry.spec.kind, where, size, placement,
                    entry.reason or entry.where])
    return out


def component_rows(models: ModelManager) -> list[list]:
    """One row per cached component, in the table's columns (its tier under "where now")."""
    def name(path: str) -> str:          # an IP-Adapter's encoder is known by its adapter
        if path.startswith("hub:"):      # a catalog IP-Adapter file or encoder: repo/file
            return path[4:]
        p = Path(path)
        return f"{p.parent.name}/{p.name}" if p.name == "image_encoder" else p.name

    return [[name(c.path), c.kind, "component", c.where + (" (in use)" if c.in_use else ""),
             fmt_bytes(c.bytes), "-", c.path] for c in models.components()]


def summary(models: ModelManager) -> str:
    """One line: free/total VRAM (when there is a GPU) and RAM, and what the cache holds of each."""
    m = models.memory()
    parts = []
    if "gpu_total" in m:
        parts.append(f"{m['device']}: {fmt_bytes(m['gpu_free'])} free of {fmt_bytes(m['gpu_total'])} "
                     f"(models {fmt_bytes(m['gpu_cached'])}, reserve {fmt_bytes(m['gpu_reserve'])})")
    else:
        parts.append(f"device {m['device']} (no GPU: models run from RAM)")
    parts.append(f"RAM: {fmt_bytes(m['ram_free'])} free of {fmt_bytes(m['ram_total'])} "
                 f"(models {fmt_bytes(m['cpu_cached'])} of a {fmt_bytes(m['cpu_budget'])} budget)")
    return " · ".join(parts)
