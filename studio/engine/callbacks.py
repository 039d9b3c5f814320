"""Per-step progress and cancel, through the pipeline's ``callback_on_step_end``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from studio.results import ProgressEvent

ProgressFn = Callable[[ProgressEvent], None]


class StepCallback:
    """Called by diffusers at the end of each denoising step.

    Cancel is checked *before* the step is reported: a cancel that arrives while step k runs
    (e.g. from the handler of step k-1's event) stops the loop after step k. diffusers then
    skips the remaining steps but still decodes; the runner discards that image.
    """

    def __init__(self, *, total: int, batch: int, batches: int, started: float,
                 on_progress: ProgressFn | None, cancel: threading.Event | None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.total, self.batch, self.batches = total, batch, batches
        self.started, self._clock = started, clock
        self._on_progress, self._cancel = on_progress, cancel
        self.steps_done = 0
        self.cancelled = False
        self._call_started = clock()

    def __call__(self, pipe, step: int, timestep, tensors: dict) -> dict:
        self.steps_done = step + 1
        if self._cancel is not None and self._cancel.is_set():
            self.cancelled = True
            pipe._interrupt = True
            return tensors
        if self._on_progress is not None:
            now = self._clock()
            per_step = (now - self._call_started) / self.steps_done
            remaining = (self.total - self.steps_done) + (self.batches - self.batch - 1) * self.total
            self._on_progress(ProgressEvent(step=self.steps_done, total=self.total, batch=self.batch,
                                            batches=self.batches, elapsed=now - self.started,
                                            eta=per_step * remaining))
        return tensors
