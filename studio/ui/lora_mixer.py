"""The LoRA tab's events (``tab_loras.connect``): library, mixer <-> every form's LoRAs field and
prompt tags, trigger words, presets, fuse, merge, and the ``/loras`` API. Handlers are thin; the
mix is per browser session (``gr.State``), the fuse switch is the studio's."""

from __future__ import annotations

import gradio as gr

from studio import forms
from studio.errors import InvalidRequest
from studio.loras import mix, view
from studio.loras.tags import take
from studio.requests import LoraSpec
from studio.ui.errors import shown_as_gr_error
from studio.ui.widgets import GPU_QUEUE

PRIVATE = dict(api_visibility="private")
FAST = dict(api_visibility="private", queue=False)


def wire(studio, ctx, t) -> None:  # noqa: ANN001, C901 - one place that wires the tab
    from studio.ui.tab_loras import _family, _preview

    library, presets = studio.registry.lora_library, studio.registry.lora_presets
    # one entry per generating form (img2img and inpaint are two "send to" targets of one form)
    bases, tasks = [], []
    for task, target in ctx.forms.items():
        base = getattr(target, "form", target).base
        if all(base is not seen for seen in bases):
            bases.append(base)
            tasks.append(getattr(task, "value", task))     # a Task, or a tab's own key ("ip_adapter")
    boxes = [base.loras for base in bases]
    prompts = [base.prompt for base in bases]
    t.target.choices = [(task, task) for task in tasks] or [("txt2img", "txt2img")]
    mix_outputs = [t.entries, t.mix_table, t.mix_text, t.status, *boxes]

    def shown(entries, tags, model, status="", skip=None):
        text = mix.to_text(entries)
        rows = view.mix_rows(entries, tags, library, _family(studio, model))
        fields = [gr.update() if box is skip else text for box in boxes]
        return (entries, rows, text, status, *fields)

    # -- library ------------------------------------------------------------------------------
    def listing(query, family, model):
        infos = library.search(query or "", family or "")
        return view.library_rows(infos, _family(studio, model)), gr.update(choices=[i.name for i in infos])

    for widget in (t.search, t.family, t.model):
        widget.change(shown_as_gr_error(listing), [t.search, t.family, t.model], [t.table, t.pick], **FAST)

    def loras(query: str = "", family: str = "", model: str = ""):
        """Every LoRA in the library (search words, a family), with its metadata; with a model, whether
        each fits it and why not."""
        target = _family(studio, model) if model else None
        return [view.record(info, target) for info in library.search(query or "", family or "")]

    t.api_list.click(shown_as_gr_error(loras), [t.search, t.family, t.model], t.api_out, api_name="loras")

    def show(name, model):
        if not name:
            return "Pick a LoRA to see what it is.", None, gr.update()
        info = library.find(name)
        digest = library.hash(info) if not info.problem else ""
        weight = info.facts.preferred_weight
        return (view.details(info, _family(studio, model), digest), _preview(info),
                gr.update() if weight is None else weight)

    t.pick.input(shown_as_gr_error(show), [t.pick, t.model], [t.details, t.preview, t.weight], **PRIVATE)

    def picked_row(model, evt: gr.SelectData):
        name = evt.row_value[0]
        return (name, *show(name, model))

    t.table.select(shown_as_gr_error(picked_row), [t.model], [t.pick, t.details, t.preview, t.weight], **PRIVATE)

    def picked_mix(model, evt: gr.SelectData):
        name, weight = evt.row_value[0], evt.row_value[1]
        details, preview, _ = show(name, model)
        return name, weight, details, preview

    t.mix_table.select(shown_as_gr_error(picked_mix), [t.model], [t.pick, t.weight, t.details, t.preview],
                       **PRIVATE)

    # -- the mix ------------------------------------------------------------------------------
    def add(entries, tags, name, weight, model):
        if not name:
            raise InvalidRequest("loras", "pick a LoRA first")
        info = library.usable(name)
        family = _family(studio, model)
        if family is not None:
            ok, why = info.fits(family)
            if not ok:
                raise InvalidRequest("loras", f"LoRA {info.name!r} cannot be used with {model}: {why}")
        entries = mix.put(tuple(entries), info.name, forms.number("weight", weight, whole=False, default=1.0))
        return shown(entries, tags, model, f"**{info.name}** is in the mix.")

    t.add.click(shown_as_gr_error(add), [t.entries, t.tags, t.pick, t.weight, t.model], mix_outputs, **PRIVATE)

    def needs(entries, name):
        if not name or name not in {e.name for e in entries}:
            raise InvalidRequest("loras", f"{name or 'that LoRA'!r} is not in the mix; pick one of its rows")

    def toggle(entries, tags, name, model):
        needs(entries, name)
        return shown(mix.toggle(tuple(entries), name), tags, model)

    def remove(entries, tags, name, model):
        needs(entries, name)
        return shown(mix.remove(tuple(entries), name), tags, model)

    inputs = [t.entries, t.tags, t.pick, t.model]
    t.toggle.click(shown_as_gr_error(toggle), inputs, mix_outputs, **PRIVATE)
    t.remove.click(shown_as_gr_error(remove), inputs, mix_outputs, **PRIVATE)
    t.clear.click(shown_as_gr_error(lambda tags, model: shown((), tags, model)), [t.tags, t.model], mix_outputs,
                  **PRIVATE)

    for box in boxes:                   # a field typed or filled ("send to") is the mix, in every tab
        def typed(text, entries, tags, model, _box=box):
            try:
                return shown(mix.from_text(text or "", tuple(entries)), tags, model, "", skip=_box)
            except InvalidRequest as err:
                return (gr.update(), gr.update(), gr.update(), f"LoRAs field: {err}",
                        *[gr.update()] * len(boxes))

        box.change(typed, [box, t.entries, t.tags, t.model], mix_outputs, trigger_mode="always_last", **FAST)

    for task, prompt in zip(tasks, prompts, strict=True):     # what each prompt's tags ask for
        def tagged(text, entries, tags, model, _tab=task):
            tags = dict(tags)
            try:
                tags[_tab] = take(text or "")[1]
                note = ""
            except InvalidRequest as err:
                tags.pop(_tab, None)
                note = f"{_tab} prompt: {err}"
            tags = {k: v for k, v in tags.items() if v}
            return tags, view.mix_rows(tuple(entries), tags, library, _family(studio, model)), note

        prompt.change(tagged, [prompt, t.entries, t.tags, t.model], [t.tags, t.mix_table, t.status],
                      trigger_mode="always_last", **FAST)

    def insert(name, target, *texts):
        info = library.find(name) if name else None
        if info is None or not info.facts.trigger_words:
            raise InvalidRequest("loras", f"{name or 'pick a LoRA'}: its metadata names no trigger words"
                                 if name else "pick a LoRA first")
        words = ", ".join(info.facts.trigger_words)
        updates = [gr.update(value=(text + ", " if text else "") + words) if task == target else gr.update()
                   for task, text in zip(tasks, texts, strict=True)]
        return updates[0] if len(updates) == 1 else updates      # one output takes one value, not a list

    t.trigger.click(shown_as_gr_error(insert), [t.pick, t.target, *prompts], prompts, **PRIVATE)

    def host_only(what: str) -> None:
        """Public mode: what changes the studio for everyone is the host's (studio/public.py)."""
        if getattr(studio, "public", None) is not None:
            raise InvalidRequest(what, "a public studio's visitors cannot change it (it is shared by everyone); "
                                       "run a studio of your own for that")

    def fused(on):
        host_only("fuse")
        studio.lora_fuse = bool(on)
        return "Fusing the mix into the weights for every generation." if on else "LoRAs applied unfused."

    t.fuse.change(shown_as_gr_error(fused), t.fuse, t.status, **PRIVATE)

    # -- presets, merge -----------------------------------------------------------------------
    def save(entries, name):
        host_only("presets")
        filled = []
        for e in entries:
            try:
                filled.append(mix.MixEntry(e.name, e.weight, e.on, library.hash(library.usable(e.name))))
            except Exception:  # noqa: BLE001 - a hub LoRA not fetched yet: saved by name alone
                filled.append(e)
        presets.save(name, tuple(filled))
        return gr.update(choices=presets.names(), value=name.strip()), f"Saved the preset **{view.escape(name)}**."

    t.preset_save.click(shown_as_gr_error(save), [t.entries, t.preset_name], [t.presets, t.status], **PRIVATE)

    def load(name, tags, model):
        kept, missing = [], []
        for e in presets.get(name or ""):
            spec, line = library.describe(LoraSpec(e.name, e.weight, e.hash))
            if line.endswith("not in the LoRA folder"):
                missing.append(line)
            else:
                kept.append(mix.MixEntry(spec.name, e.weight, e.on, e.hash))
        note = f"Loaded **{view.escape(name)}**." + (f" Left out: {'; '.join(missing)}." if missing else "")
        return shown(tuple(kept), tags, model, note)

    t.preset_load.click(shown_as_gr_error(load), [t.presets, t.tags, t.model], mix_outputs, **PRIVATE)

    def delete(name):
        host_only("presets")
        gone = presets.delete(name or "")
        return gr.update(choices=presets.names(), value=None), ("Deleted." if gone else "No such preset.")

    t.preset_delete.click(shown_as_gr_error(delete), t.presets, [t.presets, t.status], **PRIVATE)

    def merge(entries, model, name):
        entry = studio.merge_loras(model, mix.specs(entries), name)
        return (f"Saved **{view.escape(entry.id)}** in models/checkpoints/: pick it in the model list (↻).",
                gr.update(choices=studio.registry.ids()), view.memory_line(studio.models.lora_rows()))

    t.merge.click(shown_as_gr_error(merge), [t.entries, t.model, t.merge_name], [t.status, t.model, t.memory],
                  concurrency_id=GPU_QUEUE, **PRIVATE)

    def opened(query, family, model):
        rows, choices = listing(query, family, model)
        return rows, choices, view.memory_line(studio.models.lora_rows())

    t.tab.select(shown_as_gr_error(opened), [t.search, t.family, t.model], [t.table, t.pick, t.memory], **PRIVATE)
