"""A generation form: the shared base section, a tab's own section, the labeled results.

Every generating tab has the same base fields (model, prompt, negative prompt, LoRAs, size, steps,
guidance, seed, batch) and results (Images, Seed used, Infotext, Image ids, Status); a tab adds its
own section (img2img: the image, mask, strength...). The tab writes one handler whose signature
names the API parameters, turns its values into a request with ``base.request_fields`` plus its
section's fields, and yields ``form.run(request, ...)``: batches stream in as they finish.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from studio import forms
from studio.requests import GenerationRequest, LoraSpec, Task
from studio.results import SavedImage
from studio.service import Studio
from studio.ui.errors import shown_as_gr_error
from studio.ui.visitors import owner_of
from studio.ui.widgets import GPU_QUEUE, Cancellers, NumberField, limits_text, model_choices, progress_text

# The base section's API parameters, in order (after them come the tab's own).
BASE = ("prompt", "negative_prompt", "model", "width", "height", "steps", "guidance", "seed", "batch_count",
        "batch_size", "loras")
EMPTY_PROMPT = "The prompt is empty: the model draws unconditionally."


@dataclass
class BaseSection:
    """The fields every generating tab shares, by API name (``BASE`` order), and the aspect picker."""

    fields: dict[str, gr.components.Component]
    aspect: gr.Dropdown
    studio: Studio
    size_from_input: bool = False     # img2img: an empty size means the input image's (the model leaves it)

    @classmethod
    def create(cls, studio: Studio, t: str, *, size_from_input: bool = False) -> BaseSection:
        d = studio.defaults()
        # gradio draws an empty number box as "0": for img2img 0 says "the image's size" (request_fields)
        size = {"value": 0} if size_from_input else {}
        size_info = "; 0 = the image's × scale by" if size_from_input else ""
        with gr.Row():
            model = gr.Dropdown(model_choices(studio), value=d["model_id"], label="Model", allow_custom_value=True,
                                scale=8, info="Local, built-in and hub models; the Models tab has details.")
            rescan = gr.Button("↻", scale=1, min_width=40, elem_id=f"{t}-rescan")
        prompt = gr.Textbox(label="Prompt", lines=3, info=str(d["prompt_hint"]) or None,   # no value: required
                            placeholder="a red circle at the left on a blue background", elem_id=f"{t}-prompt")
        negative = gr.Textbox(value="", label="Negative prompt", lines=2, visible=bool(d["negative"]),
                              info="Only for models that use one (SD, FLUX dev via true CFG).")
        loras = gr.Textbox(value="", label="LoRAs", placeholder="name:weight, name2:0.5",
                           info=f"Files in models/loras/, each with its weight ({limits_text('lora_weight')}), or "
                                "<lora:name:weight> in the prompt. The LoRAs tab mixes them.", elem_id=f"{t}-loras")
        with gr.Row():
            presets = list(d["presets"])
            aspect = gr.Dropdown(presets, value=presets[0], label="Aspect", min_width=90, visible=not size_from_input,
                                 info="the model's trained sizes" if len(presets) < 7 else None, elem_id=f"{t}-aspect")
            width = NumberField(**{"value": d["width"], **size}, step=16, label="Width", min_width=110,
                                info=f"{limits_text('width')}, ×16{size_info}", elem_id=f"{t}-width")
            height = NumberField(**{"value": d["height"], **size}, step=16, label="Height", min_width=110,
                                 info=f"{limits_text('height')}, ×16{size_info}", elem_id=f"{t}-height")
        with gr.Row():
            steps = NumberField(value=d["steps"], step=1, label="Steps", info=limits_text("steps"), min_width=110,
                                elem_id=f"{t}-steps")
            guidance = NumberField(value=d["guidance"], step=0.1, label=str(d["guidance_label"]),
                                   info=limits_text("guidance"), min_width=110, elem_id=f"{t}-guidance")
            # text, not a number box: a browser's number holds 53 bits, a seed 64 (2^64-1 would come back
            # as 18446744073709552000); forms.number reads the digits exactly
            seed = gr.Textbox(value="-1", label="Seed", info=f"-1 = random; {limits_text('seed')}", max_lines=1,
                              min_width=110, elem_id=f"{t}-seed")
        with gr.Row():
            batch_count = NumberField(value=1, step=1, label="Batch count", min_width=110,
                                      info=f"{limits_text('batch_count')} calls, one after another",
                                      elem_id=f"{t}-batch-count")
            batch_size = NumberField(value=1, step=1, label="Batch size", min_width=110,
                                     info=f"{limits_text('batch_size')} images per call", elem_id=f"{t}-batch-size")
        rescan.click(lambda: gr.update(choices=model_choices(studio)), None, model, api_visibility="private")
        fields = dict(zip(BASE, (prompt, negative, model, width, height, steps, guidance, seed, batch_count,
                                 batch_size, loras), strict=True))
        section = cls(fields, aspect, studio, size_from_input)
        section._wire()
        return section

    def __getattr__(self, name: str):
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def inputs(self) -> list:
        return list(self.fields.values())

    @staticmethod
    def request_fields(*, prompt, negative_prompt, model, width, height, steps, guidance, seed, batch_count,
                       batch_size, loras) -> dict:
        """Widget (or raw API) values -> request keyword arguments. An empty size, steps or guidance
        means the model's default; anything else is checked as typed, and errors name the field.
        (Forms that start from an image read a size of 0 as empty first: ``size_from_input``.)"""
        n = forms.number
        return dict(prompt=prompt or "", negative_prompt=negative_prompt or "", model_id=model or "",
                    width=n("width", width), height=n("height", height), steps=n("steps", steps),
                    guidance=n("guidance", guidance, whole=False), seed=n("seed", seed, default=-1),
                    batch_count=n("batch_count", batch_count, default=1),
                    batch_size=n("batch_size", batch_size, default=1), loras=forms.parse_loras(loras))

    # -- "send to": only what the form accepts --------------------------------------------
    FILLED = ("model", "prompt", "negative_prompt", "loras", "width", "height", "steps", "guidance", "seed")

    @property
    def fill_outputs(self) -> list:
        return [self.fields[name] for name in self.FILLED]

    def fill(self, fields: dict) -> list:
        """Updates for ``fill_outputs`` that load ``fields`` (request field names). Values the form
        would refuse are left as they are and named in a warning; the rest is sent."""
        registry = self.studio.registry
        local = tuple(registry.lora_library.describe(x if isinstance(x, LoraSpec) else LoraSpec(**x))[0]
                      for x in fields.get("loras") or ())      # another name here, found by its hash
        adapted = forms.adapt({**fields, "loras": local}, models=registry.ids(), loras=registry.lora_names())
        if adapted.problems:
            gr.Warning("Sent, except: " + "; ".join(adapted.problems) + ".")
        got, keep = adapted.fields, gr.update()
        return [gr.update(value=got["model_id"]) if "model_id" in got else keep,
                got.get("prompt", keep), got.get("negative_prompt", keep), forms.format_loras(got.get("loras", ())),
                got.get("width", keep), got.get("height", keep), got.get("steps", keep), got.get("guidance", keep),
                str(got.get("seed", -1))]

    def _wire(self) -> None:
        studio, f = self.studio, self.fields

        @shown_as_gr_error
        def on_model(model_id: str):
            d = studio.defaults(model_id)
            presets = list(d["presets"])
            if self.size_from_input:                  # the size stays the image's
                d = {**d, "width": 0, "height": 0}
            return (gr.update(value=d["width"]), gr.update(value=d["height"]), gr.update(value=d["steps"]),
                    gr.update(value=d["guidance"], label=str(d["guidance_label"])),
                    gr.update(visible=bool(d["negative"])), gr.update(info=str(d["prompt_hint"]) or None),
                    gr.update(choices=presets, value=presets[0]))

        # .input, not .change: "send to" sets the model AND its size/steps; only a user pick resets them
        f["model"].input(on_model, f["model"], [f["width"], f["height"], f["steps"], f["guidance"],
                                                f["negative_prompt"], f["prompt"], self.aspect],
                         api_visibility="private")

        @shown_as_gr_error
        def on_aspect(model_id: str, aspect: str):
            presets = studio.defaults(model_id)["presets"]
            return presets.get(aspect, (gr.update(), gr.update()))

        self.aspect.input(on_aspect, [f["model"], self.aspect], [f["width"], f["height"]], api_visibility="private")


@dataclass
class Results:
    """What a generation shows, and the API returns, labeled."""

    images: gr.Gallery
    seed: gr.Textbox
    infotext: gr.Textbox
    image_ids: gr.JSON
    status: gr.Markdown
    send: dict = field(default_factory=dict)        # "img2img" / "inpaint" -> its button
    selected: gr.State | None = None

    @classmethod
    def create(cls, t: str) -> Results:
        images = gr.Gallery(label="Images", columns=2, height=560, object_fit="contain", format="png",
                            elem_id=f"{t}-images", elem_classes=["studio-images"], interactive=False)
        with gr.Row():
            # a Textbox: gradio draws an empty Number as "0", and "Seed used" is empty before a run
            seed = gr.Textbox(value="", label="Seed used", interactive=False, max_lines=1, buttons=["copy"],
                              elem_id=f"{t}-seed-used")
        infotext = gr.Textbox(value="", label="Infotext", lines=2, max_lines=6, interactive=False, buttons=["copy"],
                              elem_id=f"{t}-infotext", info="The parameters of the first image, as A1111 writes them.")
        image_ids = gr.JSON(value=[], label="Image ids", visible=False)
        status = gr.Markdown(label="Status", elem_id=f"{t}-info")
        # "send to" buttons: shown by the tabs they send to (studio/ui/tab_img2img.py wires them)
        with gr.Row():
            send = {task: gr.Button(f"Send to {task}", size="sm", visible=False, elem_id=f"{t}-send-{task}")
                    for task in ("img2img", "inpaint")}
        selected = gr.State(0)              # the image picked in Images (index), for "send to"

        def pick(evt: gr.SelectData) -> int:
            return evt.index

        images.select(pick, None, selected, api_visibility="private", queue=False)
        return cls(images, seed, infotext, image_ids, status, send, selected)

    @property
    def outputs(self) -> list:
        return [self.images, self.seed, self.infotext, self.image_ids, self.status]


@dataclass
class GenerationForm:
    task: Task
    base: BaseSection
    results: Results
    generate: gr.Button
    cancel: gr.Button
    studio: Studio
    cancellers: Cancellers = field(default_factory=Cancellers)

    @classmethod
    def create(cls, studio: Studio, task: Task, section=None, *, prefix: str | None = None) -> GenerationForm:
        """The form; ``section(t)``, when given, builds the tab's own widgets above the base ones (the
        image first). Tasks that start from an image take its size unless one is given. ``prefix``
        starts the elem_ids (default: the task's name; a second form of one task needs its own)."""
        t = prefix or task.value
        with gr.Row():
            with gr.Column(scale=3):
                if section is not None:
                    section(t)
                base = BaseSection.create(studio, t, size_from_input=task is not Task.TXT2IMG)
                with gr.Row():
                    generate = gr.Button("Generate", variant="primary", elem_id=f"{t}-generate")
                    cancel = gr.Button("Cancel", variant="stop", elem_id=f"{t}-cancel")
            with gr.Column(scale=4):
                results = Results.create(t)
        return cls(task, base, results, generate, cancel, studio)

    # kept for "send to" (the gallery and PNG Info fill the form through ctx)
    @property
    def fill_outputs(self) -> list:
        return self.base.fill_outputs

    def fill(self, fields: dict) -> list:
        return self.base.fill(fields)

    def wire(self, handler, *, api_name: str | None, concurrency: int, extra_inputs: list = (),
             inputs: set | None = None) -> None:
        """Generate (button and Enter in the prompt) and Cancel. Cancel stops the running job at the
        end of its step and takes this session's queued jobs out of the queue. ``api_name=None``: the
        button's handler is the UI's own (its endpoints come from ``wire_api``). ``inputs``: a set of
        components instead of the base's and ``extra_inputs`` (the handler then gets one dict)."""
        common = dict(inputs=inputs if inputs is not None else [*self.base.inputs, *extra_inputs],
                      outputs=self.results.outputs, concurrency_id=GPU_QUEUE, concurrency_limit=concurrency,
                      show_progress_on=[self.results.images])
        api = {"api_name": api_name} if api_name else {"api_visibility": "private"}
        clicked = self.generate.click(handler, **api, **common)
        submitted = self.base.prompt.submit(handler, api_visibility="private", **common)

        def on_cancel(request: gr.Request):
            if self.cancellers.cancel(request.session_hash):
                gr.Info("Cancelling: stops at the end of the current step; finished images are kept.")

        self.cancel.click(on_cancel, None, None, concurrency_limit=None, api_visibility="private",
                          cancels=[clicked, submitted])

    def wire_api(self, handler, trigger: gr.Button, *, api_name: str, concurrency: int, inputs: list) -> None:
        """A named endpoint for API clients whose inputs differ from the UI's (plain image files where
        the UI has an editor): ``trigger`` is a hidden button; the results are the form's."""
        trigger.click(handler, inputs=inputs, outputs=self.results.outputs, api_name=api_name,
                      concurrency_id=GPU_QUEUE, concurrency_limit=concurrency)

    def run(self, request: GenerationRequest, session: gr.Request | None, progress):
        """Generate ``request`` for a handler: yields the results after every batch and at the end.
        Public mode: the images are the asking visitor's (``visitors.owner_of``)."""
        owner = owner_of(self.studio, session)
        notes = [] if request.prompt.strip() else [EMPTY_PROMPT]
        for note in notes:
            gr.Info(note)
        cancel = self.cancellers.start(session.session_hash if session is not None and session.session_hash
                                       else "api")
        progress(0, desc="loading model")
        yield from _stream(self.studio, request, cancel, progress, notes, owner)


def _gallery(saved: list[SavedImage]) -> list[tuple[str, str]]:
    return [(s.path, f"seed {s.seed}") for s in saved]


def _saved_line(saved: list[SavedImage]) -> str:
    return ("Saved: " + ", ".join(f"`{Path(s.path).name}`" for s in saved[:4])
            + (" …" if len(saved) > 4 else "")) if saved else ""


def _results(saved: list[SavedImage], seed: int, status: str) -> tuple:
    return (_gallery(saved), str(seed), saved[0].infotext if saved else "", [s.image_id for s in saved], status)


def _stream(studio: Studio, req: GenerationRequest, cancel: threading.Event, progress, notes: list[str],
            owner: str | None = None):
    """Run ``studio.generate`` in a worker thread; yield the results after every finished batch and
    at the end. Progress is reported from this (the handler's) thread. If the page goes away or the
    job is cancelled, ``finally`` stops the worker at its next step."""
    events: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            result = studio.generate(req, on_progress=lambda ev: events.put(("progress", ev)), cancel=cancel,
                                     on_saved=lambda saved: events.put(("saved", saved)), owner=owner,
                                     on_wait=lambda n: events.put(("waiting", n)))
            events.put(("done", result))
        except BaseException as err:  # noqa: BLE001 - handed to the handler's thread, raised there
            events.put(("error", err))

    worker = threading.Thread(target=work, name="generate", daemon=True)
    worker.start()
    shown: list[SavedImage] = []
    started, stepping, others = time.perf_counter(), False, 0
    try:
        while True:
            try:
                kind, value = events.get(timeout=1.0)
            except queue.Empty:             # loading (or another job holds the GPU): say so, with the time
                if others:
                    progress(0, desc=f"waiting for a turn ({others} other job(s) first)")
                elif not stepping:
                    progress(0, desc=f"loading the model ({time.perf_counter() - started:.0f} s)")
                continue
            stepping = stepping or kind == "progress"
            if kind == "waiting":           # public mode: the fair queue (0: our turn, the model loads now)
                others, started = value, time.perf_counter()
                if others:
                    progress(0, desc=f"waiting for a turn ({others} other job(s) first)")
            elif kind == "progress":
                done = value.batch * value.total + value.step
                progress((done, value.total * value.batches), desc=progress_text(value), unit="steps")
            elif kind == "saved":
                shown += value
                batches = req.batch_count
                yield _results(shown, shown[0].seed, f"batch {len(shown) // max(1, req.batch_size)} of {batches} "
                                                     "done" if batches > 1 else "")
            elif kind == "error":
                raise value
            else:
                for notice in value.notices:
                    gr.Info(notice)
                lines = [*notes, *value.notices, value.message, _saved_line(list(value.saved))]
                if value.cancelled:
                    gr.Warning(value.message)
                yield _results(list(value.saved), value.request.seed, "  \n".join(x for x in lines if x))
                return
    finally:
        if worker.is_alive():
            cancel.set()
            worker.join()
