"""Studio: the one object the UI holds. ``generate(request, on_progress, cancel)``.

Flow (ARCHITECTURE.md): registry -> resolved request -> lease from the model manager ->
runner with per-step callback -> images written by the sink (files, then the gallery) ->
result. Torch stays in ``models/`` and ``engine/``; Gradio never comes here.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from studio.gallery.inputs import InputStore, refs_of

from studio import hosting
from studio.engine import binders, controls, inputs, runner
from studio.engine.callbacks import ProgressFn, StepCallback
from studio.errors import InvalidRequest, OutOfMemory
from studio.models import notices
from studio.models.catalog import PipeSpec
from studio.models.ip_adapters import check_prompts
from studio.models.manager import LeasePlan
from studio.models.registry import ModelEntry, Registry
from studio.public import PublicMode
from studio.requests import RANDOM_SEED_MAX, ControlUnit, GenerationRequest, LoraSpec, Task, check_lora_weights
from studio.results import GenerationResult, SavedImage


class ImageSink(Protocol):
    """Where finished images go (``save`` writes every image or none, or raises), and where the
    inputs of a request are stored before it runs (``inputs``: an ``InputStore``)."""

    inputs: InputStore

    def save(self, request: GenerationRequest, images: list, seeds: list[int], *, entry: ModelEntry,
             timings: dict[str, float], owner: str | None = None) -> list[SavedImage]: ...


class Studio:
    def __init__(self, registry: Registry, models, sink: ImageSink, *,
                 seed_source: Callable[[], int] | None = None, clock: Callable[[], float] = time.perf_counter,
                 device_label: str = "", gpu: hosting.GpuRunner = hosting.plain_runner,
                 public: PublicMode | None = None) -> None:
        self.registry, self.models, self.sink = registry, models, sink
        self.public = public             # public mode (studio/public.py): limits, a fair queue, owners
        self.device_label = device_label
        self._gpu = gpu                  # ZeroGPU: GPU work runs through spaces.GPU (studio/hosting.py)
        # one writer: PNG encoding and gallery rows leave the generation's critical path, in order
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="studio-writer")
        self._seed_source = seed_source or (lambda: random.SystemRandom().randint(0, RANDOM_SEED_MAX))
        self._clock = clock
        self.lora_fuse = False    # "fuse for speed" (the LoRA tab's switch): every generation's LoRA mix fused
        self.control_maps = controls.MapMaker(registry, models)   # preprocessors, detectors leased from models

    # -- what the UI asks before generating ----------------------------------------------------
    def entry(self, model_id: str = "") -> ModelEntry:
        return self.registry.require(model_id)

    def defaults(self, model_id: str = "") -> dict[str, object]:
        entry = self.registry.get(model_id)
        width, height = entry.default("default_size")
        return {"model_id": entry.id, "steps": entry.default("default_steps"),
                "guidance": entry.default("default_guidance"), "width": width, "height": height,
                "negative": entry.family.supports_negative, "sampler": entry.family.sampler,
                "samplers": runner.samplers_for(entry.family), "guidance_label": entry.family.guidance_label,
                "display_scale": entry.default("display_scale") if "display_scale" in entry.defaults else 1,
                "token_limit": entry.default("token_limit"),
                "presets": notices.aspect_presets((width, height), entry.defaults),
                "prompt_hint": " ".join(filter(None, (
                    str(entry.defaults.get("prompt_hint", "")),
                    f"{entry.label} reads at most {entry.default('token_limit')} tokens; a longer prompt is "
                    "refused, never cut.")))}

    def warm_up(self, model_id: str = "") -> None:
        """Load a model ahead of the first click (app.py runs it in the background at start)."""
        self.models.load(self.registry.require(model_id))

    def resolve(self, request: GenerationRequest) -> tuple[ModelEntry, PipeSpec, LeasePlan, GenerationRequest]:
        """Every default filled in, every input stored, the lease planned. What the model cannot
        serve is refused (``InvalidRequest`` naming the field) before anything is written or loaded."""
        entry, spec, plan, resolved, _ = self.resolve_with_notices(request)
        return entry, spec, plan, resolved

    def resolve_with_notices(self, request: GenerationRequest):
        """``resolve`` and what the user should know about it (a LoRA found under a new name...)."""
        entry = self.registry.require(request.model_id)
        loras, lora_paths, notices = self.resolve_loras(request.loras, entry)
        request = request.replace(loras=loras)
        active = running(request)
        spec = binders.check(entry.family, active)          # what the family serves at all, before its nets
        runner.check_sampler(entry.family, request.scheduler or entry.family.sampler)
        nets = controls.nets_for(self.registry, entry, request)
        plan = replace(self._plan(entry, request, nets), loras=lora_paths, fuse_loras=self.lora_fuse)
        request = request.replace(image_prompts=tuple(       # the adapter each used, by name (re-generate: the same)
            replace(p, adapter=self.registry.ip_adapter(p.adapter, entry).name) for p in request.image_prompts),
            controls=tuple(replace(u, model=net.name) for u, (net, _) in zip(request.controls, nets, strict=True)))
        if plan.union_pipes:
            spec = binders.check(entry.family, active, union=True)
        size = self._output_size(entry, request)
        request = controls.with_resolutions(request, size, self.sink.inputs)     # pixel perfect: from the size

        def check(images: dict) -> None:
            inputs.check_images(request, images)

        stored = self.sink.inputs.store_request(request, make_map=self.control_maps.make, check=check)
        default_strength = 1.0 if request.task is Task.INPAINT else float(entry.default("default_strength"))
        resolved = stored.resolved(model_id=entry.id, width=size[0], height=size[1],
                                   steps=int(entry.default("default_steps")),
                                   guidance=float(entry.default("default_guidance")),
                                   seed=self._seed_source(), scheduler=entry.family.sampler,
                                   strength=default_strength)
        return entry, spec, plan, resolved, notices

    def resolve_loras(self, loras: tuple[LoraSpec, ...], entry: ModelEntry):
        """A request's LoRAs -> (specs with the local name and hash of the file each means, the
        lease's (path, weight) pairs, notices). A LoRA for another family, a bad file or a pickle is
        refused (``InvalidRequest``); one that is not there is ``ModelUnavailable``, named."""
        library = self.registry.lora_library
        specs, paths, notices = [], [], []
        for lora in loras:
            info, digest, note = library.resolve(lora.name, lora.hash)
            ok, why = info.fits(entry.family)
            if not ok:
                raise InvalidRequest("loras", f"LoRA {info.name!r} cannot be used with {entry.label}: {why}")
            if str(info.path) in {p for p, _ in paths}:
                raise InvalidRequest("loras", f"LoRA {info.name!r} is in the mix twice (as {lora.name!r} too)")
            specs.append(LoraSpec(info.name, lora.weight, digest))
            paths.append((str(info.path), lora.weight))
            notices += [note] if note else []
        return tuple(specs), tuple(paths), notices

    def outpaint(self, request: GenerationRequest, *, left: int = 0, right: int = 0, up: int = 0, down: int = 0,
                 fill: str = "edge") -> GenerationRequest:
        """The inpaint request that outpaints ``request.init_image``: its canvas extended by the given
        pixels (the new area filled by ``fill``: edge colours or a blurred stretch) and the mask of the
        new area, both stored. ``generate`` it; the gallery row holds both, so re-generate is identical.
        What cannot be served (a model without inpaint, a canvas over the size cap) is refused first,
        and then nothing is written."""
        if request.init_image is None:
            raise InvalidRequest("init_image", "needs an image (a file path) to outpaint")
        target = request.replace(task=Task.INPAINT, mask_image=request.init_image, mask_mode="masked")
        binders.check(self.registry.require(request.model_id).family, target)
        image = self.sink.inputs.open(request.init_image, "init_image")
        inputs.check_images(target, {"init_image": image})
        canvas, mask = inputs.outpaint_canvas(image, left, right, up, down, fill)
        if not (request.width and request.height):
            inputs.size_for(canvas.size, request.scale_by, field="outpaint")
        return target.replace(init_image=self.sink.inputs.put(canvas), mask_image=self.sink.inputs.put(mask))

    def _output_size(self, entry: ModelEntry, request: GenerationRequest) -> tuple[int, int]:
        """The request's size; else the init image's (times scale_by, to multiples of 16), else the
        model's default."""
        if request.width and request.height:
            return request.width, request.height
        width, height = entry.default("default_size")
        if request.init_image:
            image = self.sink.inputs.open(request.init_image, "init_image")
            width, height = inputs.size_for(image.size, request.scale_by)
        return request.width or width, request.height or height

    def preview_map(self, unit: ControlUnit, model_id: str = "", width: int | None = None,
                    height: int | None = None):
        """The control map ``unit`` would give (its image when the preprocessor is "none"), for the
        tab's live preview: the same preprocessor, settings and detectors as a generation."""
        entry = self.registry.get(model_id)
        size = self._output_size(entry, GenerationRequest("", model_id=entry.id, width=width, height=height))
        unit = controls.with_resolution(unit, size, self.sink.inputs)
        image = self.sink.inputs.open(unit.image, "controls")
        return self.control_maps.make(unit, image) or image.convert("RGB")

    def ip_adapter_defaults(self, model_id: str = "") -> dict[str, object]:
        """What the IP-Adapter tab shows for a model: the adapters it can use ((label, name), its
        default first), how many adapters and references one call takes, whether per-block presets
        apply, and the true CFG scale XLabs recommends for FLUX adapters (None: not a FLUX model; a
        model's studio.json ``ip_true_cfg_scale`` overrides it, e.g. 1 for an adapter trained without)."""
        from studio.models.ip_adapters import ARCH_RULES

        entry = self.registry.get(model_id)
        rules = ARCH_RULES.get(entry.family.lora_family, {})
        infos = self.registry.ip_adapters(entry)
        try:
            default = self.registry.ip.default_name(entry)
        except InvalidRequest:
            default = ""
        return {"adapters": [(info.describe(), info.name) for info in infos], "default": default,
                "max_adapters": rules.get("adapters", 0), "max_images": rules.get("images", 0),
                "blocks": bool(rules.get("blocks")),
                "true_cfg_scale": entry.defaults.get("ip_true_cfg_scale", rules.get("true_cfg")),
                "serves": entry.family.ip_adapter and bool(rules)}

    # -- the one generation path -----------------------------------------------------------------
    def generate(self, request: GenerationRequest, on_progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None,
                 on_saved: Callable[[list[SavedImage]], None] | None = None, *,
                 owner: str | None = None, on_wait: Callable[[int], None] | None = None) -> GenerationResult:
        """Run ``request``. ``on_progress`` hears every step, ``on_saved`` every finished batch (its
        saved images, as soon as they are written), ``cancel`` stops at the end of the current step.

        ``owner``: who asks (public mode: required; its images are recorded as its own). A public
        studio first checks the limits (over one: ``OverLimit``, nothing written), then waits for
        the owner's turn in the fair queue (over the queue limit: ``OverLimit`` at once; ``on_wait``
        hears how many jobs are ahead or running, see ``FairQueue.turn``)."""
        if self.public is None:
            return self._generate(request, on_progress, cancel, on_saved, owner)
        if not owner:
            raise InvalidRequest("session", "a public studio generates for a visitor only (no owner given)")
        entry = self.registry.require(request.model_id)
        self.public.limits.check(request, entry.default("default_size"), int(entry.default("default_steps")))
        with self.public.queue.turn(owner, cancel=cancel, on_wait=on_wait):
            return self._generate(request, on_progress, cancel, on_saved, owner)

    def _generate(self, request: GenerationRequest, on_progress: ProgressFn | None,
                  cancel: threading.Event | None, on_saved: Callable[[list[SavedImage]], None] | None,
                  owner: str | None) -> GenerationResult:
        started = self._clock()
        entry, spec, plan, req, lora_notices = self.resolve_with_notices(request)
        if self.public is not None:      # a size taken from the input image, checked before anything runs
            self.public.limits.check(req)
        run_req = running(req)
        images = inputs.load(run_req, self.sink.inputs, union=plan.union, modes=plan.modes)
        model_notices = [n for n in (notices.prompt_notice(req.prompt, entry.label, entry.defaults),
                                     notices.size_notice(req.width, req.height, entry.label, entry.defaults)) if n]
        model_notices += images.notices
        box = None                  # inpaint "only masked": the pipeline sees the box around the mask
        if req.task is Task.INPAINT and req.inpaint_area == "only_masked":
            box = inputs.crop_box(images.mask, req.mask_padding, (req.width, req.height))
        seen = inputs.cropped(images, box, (req.width, req.height)) if box else images
        state = _Progress(t0=self._clock(), owner=owner)
        msl = entry.default("max_sequence_length")

        def saved_batch(future: Future) -> None:      # on the writer's thread, in submission order
            if future.exception() is None and future.result():
                with state.lock:
                    state.saved += future.result()
                if on_saved is not None:
                    on_saved(list(future.result()))

        def work(pipe) -> None:
            """The batches not yet done: after an out-of-memory retry it resumes, never repeats.
            Each finished batch is handed to the writer, which saves it while the next one runs."""
            state.timings.setdefault("load", self._clock() - state.t0)
            state.notices = [*model_notices, *lora_notices, *runner.check_prompt_length(
                pipe, entry.family, req, int(entry.default("token_limit")), model_label=entry.label)]
            for batch in range(state.next_batch, req.batch_count):
                state.raise_failed_save()
                if cancel is not None and cancel.is_set():
                    state.cancelled_at = (0, batch)
                    return
                batch_seeds = [req.seed_of(batch, i) for i in range(req.batch_size)]
                callback = StepCallback(total=req.steps, batch=batch, batches=req.batch_count, started=started,
                                        on_progress=on_progress, cancel=cancel, clock=self._clock)
                t1 = self._clock()
                out = runner.run(pipe, entry.family, spec, run_req, seen, seeds=batch_seeds, callback=callback,
                                 max_sequence_length=msl)
                if req.task is Task.INPAINT:
                    out = [inputs.finish_inpaint(images, image, req.mask_blur, box) for image in out]
                state.add_time("generate", self._clock() - t1)
                if callback.cancelled:
                    state.cancelled_at = (callback.steps_done, batch)
                    return
                future = self._writer.submit(self._save, state, req, out, batch_seeds, entry)
                future.add_done_callback(saved_batch)
                state.saves.append(future)
                state.images += out
                state.seeds += batch_seeds
                state.next_batch = batch + 1

        try:
            with self.sink.inputs.using(refs_of(req)):     # a delete meanwhile keeps what this run reads
                steps = max(1, round(req.steps * (req.strength if req.strength is not None else 1.0)))
                seconds = hosting.estimate_seconds(entry.family.name, req.width, req.height, steps, req.images_total,
                                                   entry.defaults.get("gpu_seconds_per_step_mp"))
                try:
                    self._gpu(self.models.run, seconds)(entry, run_req.task, work, plan)
                finally:
                    wait(state.saves)                      # every finished batch is on disk before we answer
            state.raise_failed_save()
        except Exception as err:
            if _is_oom(err):  # the manager translates OOM it sees; this is the last line of defence
                self.models.release_all()
                raise OutOfMemory(f"out of memory generating {req.width}x{req.height} with {entry.label}; "
                                  "try a smaller size or batch, or --placement model_offload") from err
            raise
        timings = state.timings
        timings["total"] = self._clock() - started
        if state.cancelled_at is not None:
            steps_done, batch = state.cancelled_at
            kept = f"; kept the {len(state.images)} finished image(s)" if state.images else "; nothing was saved"
            return GenerationResult(req, tuple(state.images), tuple(state.seeds), tuple(state.saved),
                                    tuple(timings.items()), cancelled=True,
                                    message=f"cancelled at step {steps_done}/{req.steps} of batch {batch + 1}{kept}")
        load = f" (+ {timings['load']:.1f} s loading the model)" if timings.get("load", 0) > 0.5 else ""
        took = timings["total"] - (timings["load"] if load else 0.0)
        message = f"{len(state.images)} image(s) in {took:.1f} s{load}, seed {req.seed}"
        return GenerationResult(req, tuple(state.images), tuple(state.seeds), tuple(state.saved),
                                tuple(timings.items()), message=message, notices=tuple(state.notices))

    def merge_loras(self, model_id: str, loras: tuple[LoraSpec, ...], name: str) -> ModelEntry:
        """The model with the LoRA mix merged in, saved as ``models/checkpoints/<name>/`` (a diffusers
        folder the model picker lists from then on). Refused before anything is written: a bad or
        taken name, an empty mix, a LoRA that cannot be used with the model."""
        import json
        import re
        from pathlib import Path

        from studio.models.merge import merge_loras

        if self.public is not None:
            raise InvalidRequest("merge", "a public studio writes no models: merging LoRAs into a checkpoint is "
                                          "for a studio of your own (run it locally)")
        name = (name or "").strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}", name):
            raise InvalidRequest("name", f"a checkpoint name is letters, digits, '.', '_' or '-' (at most 80), got "
                                         f"{name[:100]!r}")
        dest = self.registry.checkpoints_dir / name
        if name in self.registry.ids() or dest.exists():
            raise InvalidRequest("name", f"{name!r} is taken: pick another name")
        if not loras:
            raise InvalidRequest("loras", "the mix is empty: add a LoRA to merge")
        check_lora_weights(tuple(loras))
        entry = self.registry.require(model_id)
        specs, paths, _ = self.resolve_loras(tuple(loras), entry)
        source = Path(entry.spec.source) / "studio.json" if entry.spec.kind == "folder" else None
        meta = json.loads(source.read_text(encoding="utf-8")) if source is not None and source.is_file() else {}
        meta.update({k: v for k, v in entry.defaults.items() if isinstance(v, int | float | str)})
        if "default_size" in entry.defaults:
            meta["width"], meta["height"] = entry.defaults["default_size"]
        mix = ", ".join(f"{x.name}:{x.weight:g}" for x in specs)
        meta.update(family=entry.family.name, name=name, label=f"{name} ({entry.label} + {mix})",
                    merged_from={"model": entry.id, "loras": [{"name": x.name, "weight": x.weight, "hash": x.hash}
                                                              for x in specs]})
        dest.parent.mkdir(parents=True, exist_ok=True)
        merge_loras(self.models, entry, paths, dest, meta)
        return self.registry.get(name)

    def _save(self, state: _Progress, req: GenerationRequest, images: list, seeds: list[int],
              entry: ModelEntry) -> list[SavedImage]:
        """One batch to files and rows (the sink: all or nothing), on the writer's thread."""
        t0 = self._clock()
        with state.lock:
            timings = dict(state.timings)
            if state.save_failed:                        # the run has failed: write nothing more of it
                return []
        try:
            saved = self.sink.save(req, images, seeds, entry=entry, timings=timings, owner=state.owner)
        except BaseException:
            with state.lock:
                state.save_failed = True
            raise
        state.add_time("save", self._clock() - t0)
        return saved

    def _plan(self, entry: ModelEntry, req: GenerationRequest, nets: tuple) -> LeasePlan:
        """What the lease needs besides the base model: ControlNets (``nets``: (net, mode number) per
        unit; the running units' are used) and IP-Adapters (source, scale, encoder, blocks), in request
        order, each checked (family, encoder, how many the family takes) before anything is written."""
        run = controls.running_nets(req, nets)
        check_prompts(entry, req.image_prompts)
        adapters = [(self.registry.ip_adapter(p.adapter, entry), p) for p in req.image_prompts]
        return LeasePlan(
            controlnets=tuple(n.source for n, _ in run), union=tuple(n.union for n, _ in run),
            modes=tuple(mode for _, mode in run), shared=controls.shared(run),
            union_pipes=controls.union_pipes(entry.family, tuple(n for n, _ in run)),
            ip_adapters=tuple((a.source, p.scale, a.encoder, p.blocks) for a, p in adapters))


def running(request: GenerationRequest) -> GenerationRequest:
    """What the pipeline runs: control units at scale 0 are left out (the request keeps them), so a
    scale of 0 gives exactly the image without that net, as a user expects of "off"."""
    if all(unit.scale > 0 for unit in request.controls):
        return request
    return request.replace(controls=tuple(unit for unit in request.controls if unit.scale > 0))


@dataclass
class _Progress:
    """What a generation has done so far (survives an out-of-memory retry)."""

    t0: float                 # when the lease was asked for (the studio's clock)
    owner: str | None = None  # whose images these are (public mode)
    next_batch: int = 0
    images: list = field(default_factory=list)
    seeds: list = field(default_factory=list)
    saved: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    cancelled_at: tuple[int, int] | None = None
    notices: list = field(default_factory=list)
    saves: list = field(default_factory=list)          # the writer's futures, one per batch
    save_failed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def raise_failed_save(self) -> None:
        """A batch that could not be saved stops the run: its error is the answer."""
        for future in self.saves:
            if future.done() and future.exception() is not None:
                raise future.exception()

    def add_time(self, name: str, seconds: float) -> None:
        with self.lock:                                  # the writer adds "save" from its thread
            self.timings[name] = self.timings.get(name, 0.0) + seconds


def _is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError)

