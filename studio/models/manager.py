"""Leases pipelines: a pipeline in use is locked; base models are cached and reused.

Foundation version: one lock for the whole cache, at most ``max_models`` base models kept
(LRU), task pipelines derived with ``from_pipe`` (shared weights). The memory-budget issue
grows this into GPU/CPU tiers.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from studio.models.loader import Loader, pipeline_class
from studio.models.memory import empty_cache, pipeline_bytes
from studio.models.registry import ModelEntry
from studio.requests import Task


@dataclass
class _Cached:
    entry: ModelEntry
    base: object
    tasks: dict
    bytes: int
    location: str


class ModelManager:
    def __init__(self, loader: Loader, *, max_models: int = 1) -> None:
        self._loader = loader
        self._max = max_models
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._lock = threading.RLock()

    @contextmanager
    def lease(self, entry: ModelEntry, task: Task = Task.TXT2IMG) -> Iterator[object]:
        with self._lock:
            cached = self._get(entry)
            yield self._task_pipe(cached, task)

    def _get(self, entry: ModelEntry) -> _Cached:
        cached = self._cache.get(entry.id)
        if cached is not None:
            self._cache.move_to_end(entry.id)
            return cached
        while len(self._cache) >= self._max:
            self._cache.popitem(last=False)
            empty_cache()
        base = self._loader.load(entry, Task.TXT2IMG)
        base.to(self._loader.device)
        base.set_progress_bar_config(disable=True)
        cached = _Cached(entry, base, {}, pipeline_bytes(base), self._loader.device)
        self._cache[entry.id] = cached
        return cached

    def _task_pipe(self, cached: _Cached, task: Task):
        if task is Task.TXT2IMG:
            return cached.base
        if task not in cached.tasks:
            cls = pipeline_class(cached.entry.family.pipeline_class(task))
            pipe = cls.from_pipe(cached.base)
            pipe.set_progress_bar_config(disable=True)
            cached.tasks[task] = pipe
        return cached.tasks[task]

    def loaded(self) -> list[tuple[str, str, int]]:
        with self._lock:
            return [(c.entry.id, c.location, c.bytes) for c in self._cache.values()]

    def unload(self, model_id: str) -> bool:
        with self._lock:
            dropped = self._cache.pop(model_id, None) is not None
        if dropped:
            empty_cache()
        return dropped

    def release_all(self) -> None:
        with self._lock:
            self._cache.clear()
        empty_cache()
