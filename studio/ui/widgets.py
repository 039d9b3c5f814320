"""Shared generation widgets and the request they make.

A tab builds a ``GenerationForm``, wires ``form.handler(studio)`` to its Generate button and gets
plain-named API parameters for free. ``form.fill(request)`` returns widget updates for
"send to" (the gallery and PNG Info use it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from studio.requests import GenerationRequest, ProgressEvent, Task
from studio.service import Studio
from studio.ui.errors import shown_as_gr_error

ASPECTS = {"1:1": (1, 1), "4:3": (4, 3), "3:4": (3, 4), "3:2": (3, 2), "2:3": (2, 3), "16:9": (16, 9), "9:16": (9, 16)}
GPU_QUEUE = "gpu"   # every generating listener shares this concurrency_id


def aspect_size(base: tuple[int, int], aspect: str) -> tuple[int, int]:
    """Keep the model's native pixel count, change the shape; sides are multiples of 16."""
    a, b = ASPECTS[aspect]
    area = base[0] * base[1]
    width = (area * a / b) ** 0.5
    height = width * b / a
    return max(16, round(width / 16) * 16), max(16, round(height / 16) * 16)


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


@dataclass
class GenerationForm:
    task: Task
    model: gr.Dropdown
    prompt: gr.Textbox
    negative_prompt: gr.Textbox
    aspect: gr.Dropdown
    width: gr.Slider
    height: gr.Slider
    steps: gr.Slider
    guidance: gr.Slider
    seed: gr.Number
    batch_count: gr.Slider
    batch_size: gr.Slider
    generate: gr.Button
    cancel: gr.Button
    images: gr.Gallery
    seed_used: gr.Number
    info: gr.Markdown
    cancellers: Cancellers = field(default_factory=Cancellers)

    # -- building --------------------------------------------------------------------------
    @classmethod
    def create(cls, studio: Studio, task: Task) -> GenerationForm:
        d = studio.defaults()
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row():
                    model = gr.Dropdown(model_choices(studio), value=d["model_id"], label="Model",
                                        allow_custom_value=True, scale=8,
                                        info="Local, built-in and hub models; the Models tab has details.")
                    rescan = gr.Button("↻", scale=1, min_width=40, elem_id=f"{task.value}-rescan")
                prompt = gr.Textbox(label="Prompt", lines=3, info=str(d["prompt_hint"]) or None,
                                    placeholder="a red circle at the left on a blue background")
                negative = gr.Textbox(value="", label="Negative prompt", lines=2, visible=bool(d["negative"]),
                                      info="Only for models that use one (SD, FLUX dev via true CFG).")
                with gr.Row():
                    aspect = gr.Dropdown(list(ASPECTS), value="1:1", label="Aspect", scale=1)
                    width = gr.Slider(16, 2048, value=d["width"], step=16, label="Width", scale=2)
                    height = gr.Slider(16, 2048, value=d["height"], step=16, label="Height", scale=2)
                with gr.Row():
                    steps = gr.Slider(1, 100, value=d["steps"], step=1, label="Steps", elem_id=f"{task.value}-steps")
                    guidance = gr.Slider(0, 20, value=d["guidance"], step=0.1, label=str(d["guidance_label"]))
                with gr.Row():
                    seed = gr.Number(value=-1, precision=0, label="Seed", info="-1 = random")
                    batch_count = gr.Slider(1, 16, value=1, step=1, label="Batch count", info="calls one after another")
                    batch_size = gr.Slider(1, 8, value=1, step=1, label="Batch size", info="images per call")
                with gr.Row():
                    generate = gr.Button("Generate", variant="primary", elem_id=f"{task.value}-generate")
                    cancel = gr.Button("Cancel", variant="stop", elem_id=f"{task.value}-cancel")
            with gr.Column(scale=4):
                images = gr.Gallery(label="Images", columns=2, height=560, object_fit="contain",
                                    format="png", elem_id=f"{task.value}-images", elem_classes=["studio-images"],
                                    interactive=False)
                with gr.Row():
                    seed_used = gr.Number(label="Seed used", precision=0, interactive=False)
                info = gr.Markdown(elem_id=f"{task.value}-info")
        rescan.click(lambda: gr.update(choices=model_choices(studio)), None, model, api_visibility="private")
        form = cls(task, model, prompt, negative, aspect, width, height, steps, guidance, seed, batch_count,
                   batch_size, generate, cancel, images, seed_used, info)
        form._wire(studio)
        return form

    @property
    def inputs(self) -> list:
        return [self.prompt, self.negative_prompt, self.model, self.width, self.height, self.steps,
                self.guidance, self.seed, self.batch_count, self.batch_size]

    @property
    def fill_outputs(self) -> list:
        return [self.model, self.prompt, self.negative_prompt, self.width, self.height, self.steps,
                self.guidance, self.seed]

    def fill(self, request: GenerationRequest) -> list:
        """Widget updates that load ``request`` into this form ("send to")."""
        return [gr.update(value=request.model_id), request.prompt, request.negative_prompt,
                request.width, request.height, request.steps, request.guidance,
                -1 if request.seed is None else request.seed]

    def _wire(self, studio: Studio) -> None:
        @shown_as_gr_error
        def on_model(model_id: str):
            d = studio.defaults(model_id)
            return (gr.update(value=d["width"]), gr.update(value=d["height"]), gr.update(value=d["steps"]),
                    gr.update(value=d["guidance"], label=str(d["guidance_label"])),
                    gr.update(visible=bool(d["negative"])), gr.update(info=str(d["prompt_hint"]) or None))

        # .input, not .change: "send to" sets the model AND its size/steps; only a user pick resets them
        self.model.input(on_model, self.model, [self.width, self.height, self.steps, self.guidance,
                                                  self.negative_prompt, self.prompt], api_visibility="private")

        @shown_as_gr_error
        def on_aspect(model_id: str, aspect: str):
            d = studio.defaults(model_id)
            w, h = aspect_size((int(d["width"]), int(d["height"])), aspect)
            return w, h

        self.aspect.input(on_aspect, [self.model, self.aspect], [self.width, self.height], api_visibility="private")

        def on_cancel(request: gr.Request):
            if self.cancellers.cancel(request.session_hash):
                gr.Info("Cancelling: stops at the end of the current step.")

        self.cancel.click(on_cancel, None, None, concurrency_limit=None, api_visibility="private")

    def handler(self, studio: Studio):
        form = self

        @shown_as_gr_error
        def txt2img(prompt: str, negative_prompt: str = "", model: str = "", width: float = 0, height: float = 0,
                    steps: float = 0, guidance: float = -1, seed: float = -1, batch_count: float = 1,
                    batch_size: float = 1, request: gr.Request = None, progress=gr.Progress()):
            req = form.to_request(prompt=prompt, negative_prompt=negative_prompt, model=model, width=width,
                                  height=height, steps=steps, guidance=guidance, seed=seed,
                                  batch_count=batch_count, batch_size=batch_size)
            session = request.session_hash if request is not None and request.session_hash else "api"
            cancel = form.cancellers.start(session)
            progress(0, desc="loading model")

            def on_progress(ev: ProgressEvent) -> None:
                done = ev.batch * ev.total + ev.step
                progress((done, ev.total * ev.batches), desc=progress_text(ev), unit="steps")

            result = studio.generate(req, on_progress=on_progress, cancel=cancel)
            gallery = [(s.path, f"seed {s.seed}") for s in result.saved]
            lines = [result.message]
            if result.saved:
                lines.append("Saved: " + ", ".join(f"`{Path(s.path).name}`" for s in result.saved[:4])
                             + (" …" if len(result.saved) > 4 else ""))
            if result.cancelled:
                gr.Warning(result.message)
            return gallery, result.request.seed, "  \n".join(lines)

        return txt2img

    def to_request(self, *, prompt, negative_prompt, model, width, height, steps, guidance, seed,
                   batch_count, batch_size) -> GenerationRequest:
        def whole(name, value, default=None):
            if value in (None, ""):
                return default
            try:
                as_float = float(value)
            except (TypeError, ValueError):
                raise gr.Error(f"{name}: must be a number, got {value!r}") from None
            if as_float != int(as_float):
                raise gr.Error(f"{name}: must be a whole number, got {value}")
            return int(as_float)

        return GenerationRequest(
            prompt=prompt or "",
            negative_prompt=negative_prompt or "",
            model_id=model or "",
            task=self.task,
            width=whole("width", width) or None,
            height=whole("height", height) or None,
            steps=whole("steps", steps) or None,
            guidance=None if guidance in (None, "") or float(guidance) < 0 else float(guidance),
            seed=whole("seed", seed, -1),
            batch_count=whole("batch_count", batch_count, 1),
            batch_size=whole("batch_size", batch_size, 1),
        )
