"""Shared generation widgets and the request they make.

A tab builds a ``GenerationForm``, wires ``form.handler(studio)`` to its Generate button and gets
plain-named API parameters for free. ``form.fill(fields)`` returns widget updates for "send to"
(the gallery and PNG Info use it), keeping only the values the form accepts.

Numbers are typed into ``NumberField`` boxes, which neither clamp nor round: a value out of range
is an error naming the field, the same one the API gives (``studio.forms.number``).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from studio import forms
from studio.requests import LIMITS, GenerationRequest, ProgressEvent, SavedImage, Task
from studio.service import Studio
from studio.ui.errors import shown_as_gr_error

ASPECTS = {"1:1": (1, 1), "4:3": (4, 3), "3:4": (3, 4), "3:2": (3, 2), "2:3": (2, 3), "16:9": (16, 9), "9:16": (9, 16)}
GPU_QUEUE = "gpu"   # every generating listener shares this concurrency_id


class NumberField(gr.Number):
    """A number box whose value reaches the handler as sent: no clamping, no rounding, no
    gradio bound check (whose message names no field). ``studio.forms.number`` checks it.
    ``is_template``: the browser draws it with gradio's own Number (no custom frontend)."""

    is_template = True

    @classmethod
    def get_component_class_id(cls) -> str:
        return gr.Number.get_component_class_id()

    def preprocess(self, payload):  # noqa: ANN001, ANN201 - whatever the client sent
        return payload


def _range(name: str) -> str:
    lo, hi = LIMITS[name]
    return f"{lo}–{hi}"


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


def _gallery(saved: list[SavedImage]) -> list[tuple[str, str]]:
    return [(s.path, f"seed {s.seed}") for s in saved]


def _seed(seed: int) -> str:
    return str(seed)


def _saved_line(saved: list[SavedImage]) -> str:
    return ("Saved: " + ", ".join(f"`{Path(s.path).name}`" for s in saved[:4])
            + (" …" if len(saved) > 4 else "")) if saved else ""


@dataclass
class GenerationForm:
    task: Task
    model: gr.Dropdown
    prompt: gr.Textbox
    negative_prompt: gr.Textbox
    loras: gr.Textbox
    aspect: gr.Dropdown
    width: gr.Number
    height: gr.Number
    steps: gr.Number
    guidance: gr.Number
    seed: gr.Number
    batch_count: gr.Number
    batch_size: gr.Number
    generate: gr.Button
    cancel: gr.Button
    images: gr.Gallery
    seed_used: gr.Textbox
    infotext: gr.Textbox
    image_ids: gr.JSON
    info: gr.Markdown
    cancellers: Cancellers = field(default_factory=Cancellers)
    studio: Studio | None = None

    # -- building --------------------------------------------------------------------------
    @classmethod
    def create(cls, studio: Studio, task: Task) -> GenerationForm:
        d = studio.defaults()
        t = task.value
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row():
                    model = gr.Dropdown(model_choices(studio), value=d["model_id"], label="Model",
                                        allow_custom_value=True, scale=8,
                                        info="Local, built-in and hub models; the Models tab has details.")
                    rescan = gr.Button("↻", scale=1, min_width=40, elem_id=f"{t}-rescan")
                prompt = gr.Textbox(label="Prompt", lines=3, info=str(d["prompt_hint"]) or None,  # no value: required
                                    placeholder="a red circle at the left on a blue background",
                                    elem_id=f"{t}-prompt")
                negative = gr.Textbox(value="", label="Negative prompt", lines=2, visible=bool(d["negative"]),
                                      info="Only for models that use one (SD, FLUX dev via true CFG).")
                loras = gr.Textbox(value="", label="LoRAs", placeholder="name:weight, name2:0.5",
                                   info="Files in models/loras/, each with its weight.", elem_id=f"{t}-loras")
                with gr.Row():
                    aspect = gr.Dropdown(list(ASPECTS), value="1:1", label="Aspect", min_width=90)
                    width = NumberField(value=d["width"], step=16, label="Width", min_width=110,
                                        info=f"{_range('width')}, ×16", elem_id=f"{t}-width")
                    height = NumberField(value=d["height"], step=16, label="Height", min_width=110,
                                         info=f"{_range('height')}, ×16", elem_id=f"{t}-height")
                with gr.Row():
                    steps = NumberField(value=d["steps"], step=1, label="Steps", info=_range("steps"),
                                        min_width=110, elem_id=f"{t}-steps")
                    guidance = NumberField(value=d["guidance"], step=0.1, label=str(d["guidance_label"]),
                                           info=_range("guidance"), min_width=110, elem_id=f"{t}-guidance")
                    seed = NumberField(value=-1, step=1, label="Seed", info="-1 = random", min_width=110,
                                       elem_id=f"{t}-seed")
                with gr.Row():
                    batch_count = NumberField(value=1, step=1, label="Batch count", min_width=110,
                                              info=f"{_range('batch_count')} calls, one after another",
                                              elem_id=f"{t}-batch-count")
                    batch_size = NumberField(value=1, step=1, label="Batch size", min_width=110,
                                             info=f"{_range('batch_size')} images per call",
                                             elem_id=f"{t}-batch-size")
                with gr.Row():
                    generate = gr.Button("Generate", variant="primary", elem_id=f"{t}-generate")
                    cancel = gr.Button("Cancel", variant="stop", elem_id=f"{t}-cancel")
            with gr.Column(scale=4):
                images = gr.Gallery(label="Images", columns=2, height=560, object_fit="contain",
                                    format="png", elem_id=f"{t}-images", elem_classes=["studio-images"],
                                    interactive=False)
                with gr.Row():
                    # a Textbox: gradio draws an empty Number as "0", and "Seed used" is empty before a run
                    seed_used = gr.Textbox(value="", label="Seed used", interactive=False, max_lines=1,
                                           buttons=["copy"], elem_id=f"{t}-seed-used")
                infotext = gr.Textbox(value="", label="Infotext", lines=2, max_lines=6, interactive=False,
                                      buttons=["copy"], elem_id=f"{t}-infotext",
                                      info="The parameters of the first image, as A1111 writes them.")
                image_ids = gr.JSON(value=[], label="Image ids", visible=False)
                info = gr.Markdown(label="Status", elem_id=f"{t}-info")
        rescan.click(lambda: gr.update(choices=model_choices(studio)), None, model, api_visibility="private")
        form = cls(task, model, prompt, negative, loras, aspect, width, height, steps, guidance, seed,
                   batch_count, batch_size, generate, cancel, images, seed_used, infotext, image_ids, info,
                   studio=studio)
        form._wire(studio)
        return form

    @property
    def inputs(self) -> list:
        return [self.prompt, self.negative_prompt, self.model, self.width, self.height, self.steps,
                self.guidance, self.seed, self.batch_count, self.batch_size, self.loras]

    @property
    def outputs(self) -> list:
        """Labeled API returns: Images, Seed used, Infotext, Image ids, Status."""
        return [self.images, self.seed_used, self.infotext, self.image_ids, self.info]

    # -- "send to": only what the form accepts --------------------------------------------
    @property
    def fill_outputs(self) -> list:
        return [self.model, self.prompt, self.negative_prompt, self.loras, self.width, self.height, self.steps,
                self.guidance, self.seed]

    def fill(self, fields: dict) -> list:
        """Widget updates that load ``fields`` (request field names) into this form. Values the
        form would refuse are left as they are and named in a warning; the rest is sent."""
        studio = self.studio
        loras = [p.stem for p in studio.registry.loras()] if studio is not None else []
        models = studio.registry.ids() if studio is not None else [fields.get("model_id") or ""]
        adapted = forms.adapt(fields, models=models, loras=loras)
        if adapted.problems:
            gr.Warning("Sent, except: " + "; ".join(adapted.problems) + ".")
        got = adapted.fields
        keep = gr.update()

        def value(name, transform=lambda v: v):
            return transform(got[name]) if name in got else keep

        return [value("model_id", lambda v: gr.update(value=v)), value("prompt"), value("negative_prompt"),
                forms.format_loras(got.get("loras", ())), value("width"), value("height"), value("steps"),
                value("guidance"), got.get("seed", -1)]

    # -- events ----------------------------------------------------------------------------
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
            return aspect_size((int(d["width"]), int(d["height"])), aspect)

        self.aspect.input(on_aspect, [self.model, self.aspect], [self.width, self.height], api_visibility="private")

    def wire_generate(self, studio: Studio, *, api_name: str, concurrency: int) -> None:
        """Generate (button and Enter in the prompt) and Cancel. Cancel stops the running job at
        the end of its step and takes this session's queued jobs out of the queue."""
        handler = self.handler(studio)
        common = dict(inputs=self.inputs, outputs=self.outputs, concurrency_id=GPU_QUEUE,
                      concurrency_limit=concurrency, show_progress_on=[self.images])
        clicked = self.generate.click(handler, api_name=api_name, **common)
        submitted = self.prompt.submit(handler, api_visibility="private", **common)

        def on_cancel(request: gr.Request):
            if self.cancellers.cancel(request.session_hash):
                gr.Info("Cancelling: stops at the end of the current step; finished images are kept.")

        self.cancel.click(on_cancel, None, None, concurrency_limit=None, api_visibility="private",
                          cancels=[clicked, submitted])

    def handler(self, studio: Studio):
        form = self

        @shown_as_gr_error
        def txt2img(prompt: str, negative_prompt: str = "", model: str = "", width: float | None = None,
                    height: float | None = None, steps: float | None = None, guidance: float | None = None,
                    seed: float = -1, batch_count: float = 1, batch_size: float = 1, loras: str = "",
                    request: gr.Request = None, progress=gr.Progress()):
            req = form.to_request(prompt=prompt, negative_prompt=negative_prompt, model=model, width=width,
                                  height=height, steps=steps, guidance=guidance, seed=seed,
                                  batch_count=batch_count, batch_size=batch_size, loras=loras)
            notes = [] if req.prompt.strip() else ["The prompt is empty: the model draws unconditionally."]
            for note in notes:
                gr.Info(note)
            session = request.session_hash if request is not None and request.session_hash else "api"
            cancel = form.cancellers.start(session)
            progress(0, desc="loading model")
            yield from _run_streaming(studio, req, cancel, progress, notes)

        return txt2img

    def to_request(self, *, prompt, negative_prompt, model, width, height, steps, guidance, seed,
                   batch_count, batch_size, loras="") -> GenerationRequest:
        """Widget (or raw API) values -> a request. An empty size, steps or guidance means the
        model's default; anything else is checked as typed, and errors name the field."""
        n = forms.number
        return GenerationRequest(
            prompt=prompt or "",
            negative_prompt=negative_prompt or "",
            model_id=model or "",
            task=self.task,
            width=n("width", width),
            height=n("height", height),
            steps=n("steps", steps),
            guidance=n("guidance", guidance, whole=False),
            seed=n("seed", seed, default=-1),
            batch_count=n("batch_count", batch_count, default=1),
            batch_size=n("batch_size", batch_size, default=1),
            loras=forms.parse_loras(loras),
        )


def _run_streaming(studio: Studio, req: GenerationRequest, cancel: threading.Event, progress, notes: list[str]):
    """Run ``studio.generate`` in a worker thread; yield (gallery, seed, info) after every finished
    batch and at the end. Progress is reported from this (the handler's) thread. If the page goes
    away or the job is cancelled, ``finally`` stops the worker at its next step."""
    events: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            result = studio.generate(req, on_progress=lambda ev: events.put(("progress", ev)), cancel=cancel,
                                     on_saved=lambda saved: events.put(("saved", saved)))
            events.put(("done", result))
        except BaseException as err:  # noqa: BLE001 - handed to the handler's thread, raised there
            events.put(("error", err))

    worker = threading.Thread(target=work, name="generate", daemon=True)
    worker.start()
    shown: list[SavedImage] = []
    try:
        while True:
            kind, value = events.get()
            if kind == "progress":
                done = value.batch * value.total + value.step
                progress((done, value.total * value.batches), desc=progress_text(value), unit="steps")
            elif kind == "saved":
                shown += value
                batches = req.batch_count
                yield (_gallery(shown), _seed(shown[0].seed), shown[0].infotext, [s.image_id for s in shown],
                       f"batch {len(shown) // max(1, req.batch_size)} of {batches} done" if batches > 1 else "")
            elif kind == "error":
                raise value
            else:
                result = value
                lines = [*notes, *result.notices, result.message, _saved_line(list(result.saved))]
                if result.cancelled:
                    gr.Warning(result.message)
                saved = list(result.saved)
                yield (_gallery(saved), _seed(result.request.seed), saved[0].infotext if saved else "",
                       [s.image_id for s in saved], "  \n".join(x for x in lines if x))
                return
    finally:
        if worker.is_alive():
            cancel.set()
            worker.join()
