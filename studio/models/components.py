"""Cached components: ControlNets, LoRA files, IP-Adapters, image encoders, preprocessors.

Each is loaded once (concurrent requests wait for that one load; a failed load leaves nothing
behind and the next request tries again), cached by path (a preprocessor by name) and kept in the
memory tiers with the models (``tiers.py``). A lease pins what it uses (``pin``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from studio.errors import ModelUnavailable
from studio.models.tiers import GPU, CachedComponent, Component, Slot, Tiers, component_key, object_bytes


class ComponentCache:
    def __init__(self, loader, tiers: Tiers, cond: threading.Condition) -> None:
        self._loader, self._tiers, self._cond = loader, tiers, cond
        self._loading: dict[str, threading.Event] = {}

    def get(self, kind: str, path, controlnet_class: str = "", *, build: Callable[[], Any] | None = None):
        """The component, from the cache or loaded now (``build()`` makes a preprocessor)."""
        key = component_key(kind, path)
        cached = self._tiers.components
        while True:
            with self._cond:
                comp = cached.get(key)
                if comp is not None:
                    cached.move_to_end(key)
                    self._tiers.touch(comp)
                    return comp.obj
                event = self._loading.get(key)
                if event is None:
                    event = self._loading[key] = threading.Event()
                    break
            event.wait()
            with self._cond:
                if key not in cached:             # the other load failed: raise our own error
                    break
        try:
            extra = {"build": build} if build is not None else {}
            obj = self._loader.load_component(kind, path, controlnet_class, **extra)
            size = object_bytes(obj)
            with self._cond:
                self._tiers.make_ram_room(size, keep=None)
                comp = cached[key] = Component(kind, str(path), obj, size, key=key)
                self._tiers.touch(comp)
            return obj
        finally:
            with self._cond:
                done = self._loading.pop(key, None)
            if done is not None:
                done.set()

    def pin(self, pinned: list, kind: str, path, *, keep: Slot | None = None, on_accelerator: bool = False,
            controlnet_class: str = ""):
        """The component, pinned (appended to ``pinned``; the caller unpins), on the accelerator if asked."""
        self.get(kind, path, controlnet_class)
        with self._cond:
            comp = self._tiers.components.get(component_key(kind, path))
            if comp is None:
                raise ModelUnavailable(f"{kind} {path} was evicted while loading; try again")
            comp.pins += 1
            pinned.append(comp)
            if on_accelerator and comp.where != GPU:
                self._tiers.promote_component(comp, keep=keep)
            return comp.obj

    def rows(self) -> list[CachedComponent]:
        with self._cond:
            return [CachedComponent(c.kind, c.path, c.bytes, c.pins > 0, c.where)
                    for c in self._tiers.components.values()]
