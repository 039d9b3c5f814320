"""Widgets and small helpers the tabs share (the generation form itself is ``studio/ui/form.py``).

Numbers are typed into ``NumberField`` boxes, which neither clamp nor round: a value out of range
is an error naming the field, the same one the API gives (``studio.forms.number``).
"""

from __future__ import annotations

import threading

import gradio as gr

from studio.requests import LIMITS
from studio.results import ProgressEvent
from studio.service import Studio

GPU_QUEUE = "gpu"   # every generating listener shares this concurrency_id


def NumberField(**kwargs) -> gr.Number:  # noqa: N802 - reads like the component it makes
    """A number box whose value reaches the handler as sent: no clamping, no rounding, no gradio
    bound check (whose message names no field); ``studio.forms.number`` checks it. An instance with
    its own ``preprocess``, not a subclass: gradio treats every Component subclass as a custom
    component (its own frontend, a .pyi written beside the source)."""
    box = gr.Number(**kwargs)
    box.preprocess = lambda payload: payload
    return box


def limits_text(name: str) -> str:
    lo, hi = LIMITS[name]
    return f"{lo}–{hi}"


class Cancellers:
    """One cancel event per browser session (gradio session_hash)."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, session: str) -> threading.Event:
        with self._lock:
            event = self._events[session] = threading.Event()
            return event

    def cancel(self, session: str) -> bool:
        with self._lock:
            event = self._events.get(session)
        if event is None:
            return False
        event.set()
        return True


def model_choices(studio: Studio) -> list[tuple[str, str]]:
    out = []
    for entry in studio.registry.entries():
        label = entry.label if entry.available and not entry.reason else \
            f"{entry.label} — {'not downloaded' if entry.available else 'unavailable'}"
        out.append((label, entry.id))
    return out


def progress_text(ev: ProgressEvent) -> str:
    eta = f" · ETA {ev.eta:.1f} s" if ev.eta is not None else ""
    batch = f" · batch {ev.batch + 1}/{ev.batches}" if ev.batches > 1 else ""
    return f"step {ev.step}/{ev.total}{batch}{eta}"
