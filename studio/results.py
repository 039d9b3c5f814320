"""What a generation reports while it runs and gives back when it is done."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.requests import GenerationRequest


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    step: int                 # steps done in the current call (1-based)
    total: int                # steps of the current call
    batch: int = 0            # which call (0-based) of batch_count
    batches: int = 1
    elapsed: float = 0.0      # seconds since the request started
    eta: float | None = None  # seconds left for the whole request, when known

    @property
    def fraction(self) -> float:
        return (self.batch * self.total + self.step) / max(1, self.batches * self.total)


@dataclass(frozen=True, slots=True)
class SavedImage:
    path: str
    seed: int
    image_id: int | None = None   # gallery row, when a gallery records it
    infotext: str = ""


@dataclass(frozen=True, slots=True)
class GenerationResult:
    request: GenerationRequest            # resolved: every default filled in
    images: tuple[Any, ...]               # PIL images, native size
    seeds: tuple[int, ...]
    saved: tuple[SavedImage, ...] = ()
    timings: tuple[tuple[str, float], ...] = ()
    cancelled: bool = False
    message: str = ""
    notices: tuple[str, ...] = ()         # things the user should know that are not errors

    def timing(self, name: str) -> float:
        return dict(self.timings).get(name, 0.0)
