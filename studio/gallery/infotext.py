"""A1111 "parameters" text: the lingua franca of PNG metadata between studios. Write and parse.

    <prompt, any number of lines>
    Negative prompt: <negative, any number of lines>
    Steps: 4, Sampler: Euler, CFG scale: 0.0, Seed: 42, Size: 1024x1024, Model: flux-schnell

Values holding a comma, colon, quote, newline or edge whitespace are written as JSON strings
(A1111's ``quote``), so any prompt survives ``format -> parse``. ``parse_infotext`` follows
A1111's own ``parse_generation_parameters``: the last line is the parameter line when it holds
at least three ``key: value`` pairs, keys it does not know are kept as they are.

``fields_from_infotext`` maps the parsed keys onto ``GenerationRequest`` fields (A1111/Forge
names: "CFG scale", "Distilled CFG Scale", "Sampler" + "Schedule type", ``<lora:name:w>`` in the
prompt, ...); ``request_from_infotext`` builds the checked request from them. Other tools'
metadata (Fooocus, ComfyUI, InvokeAI, SwarmUI, NovelAI) is read by ``studio.gallery.readers``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from studio.errors import StudioError
from studio.loras.tags import hash_name as _hash_name
from studio.loras.tags import lora_hashes, take_foreign, with_tags
from studio.requests import (INPAINT_AREAS, MASK_MODES, RESIZE_MODES, ControlUnit, GenerationRequest, ImagePrompt,
                             LoraSpec, Task, check_lora_weights)

NEGATIVE = "Negative prompt:"
# A1111 modules/infotext_utils.py: a key, a colon, then a JSON string or anything up to a comma
RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
RE_SIZE = re.compile(r"^\s*(\d+)\s*[x×]\s*(\d+)\s*$")
SCHEDULE_SUFFIX = {"karras": "Karras", "exponential": "Exponential", "sgm uniform": "SGM Uniform"}


def _quote(value: object) -> str:
    """A1111 quotes a value holding a comma, colon or newline as a JSON string; so do we, and
    also quotes and edge whitespace, which A1111 would otherwise lose."""
    text = str(value)
    if any(c in text for c in ',:"\n\r') or text != text.strip():
        return json.dumps(text, ensure_ascii=False)
    return text


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            return str(json.loads(value))
        except json.JSONDecodeError:
            return value
    return value


def _number(value: float | int | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def _pairs(fields: dict[str, object]) -> str:
    return ", ".join(f"{key}: {_quote(value)}" for key, value in fields.items() if value is not None)


def format_infotext(request: GenerationRequest, seed: int, *, model_label: str | None = None,
                    sampler: str | None = None, extra: dict[str, object] | None = None) -> str:
    """The A1111 text for one image of a resolved request (its own seed).

    Studio-only facts A1111 has no key for (LoRA weights, ControlNet images, IP-Adapter, the
    task and input images) get keys of their own; A1111 and Forge keep unknown keys as they are.
    """
    lines = [with_tags(request.prompt, request.loras)]
    if request.negative_prompt:
        lines.append(f"{NEGATIVE} {request.negative_prompt}")
    fields: dict[str, object] = {
        "Steps": request.steps,
        "Sampler": sampler or request.scheduler or "Euler",
        "CFG scale": _number(request.guidance),
        "Seed": seed,
        "Size": f"{request.width}x{request.height}",
        "Model": model_label or request.model_id,
    }
    if request.strength is not None:
        fields["Denoising strength"] = _number(request.strength)
    if request.task is not Task.TXT2IMG:
        fields["Task"] = request.task.value
    if request.task is not Task.TXT2IMG and request.resize_mode != "just_resize":
        fields["Resize mode"] = RESIZE_MODES[request.resize_mode]
    if request.task is Task.INPAINT:          # A1111's keys and values (it writes the last three when not default)
        fields["Mask blur"] = request.mask_blur
        if request.mask_mode != "masked":
            fields["Mask mode"] = MASK_MODES[request.mask_mode]
        if request.inpaint_area != "whole":
            fields["Inpaint area"] = INPAINT_AREAS[request.inpaint_area]
            fields["Masked area padding"] = request.mask_padding
    if request.init_image:
        fields["Init image"] = request.init_image
    if request.mask_image:
        fields["Mask image"] = request.mask_image
    if request.loras:
        fields["Loras"] = _format_loras(request.loras)
        if any(lora.hash for lora in request.loras):
            fields["Lora hashes"] = ", ".join(f"{_hash_name(x.name)}: {x.hash[:12]}" for x in request.loras if x.hash)
    for i, unit in enumerate(request.controls):
        fields[f"ControlNet {i}"] = _pairs({"Module": unit.preprocessor, "Model": unit.model or unit.type,
                                            "Weight": _number(unit.scale), "Guidance Start": _number(unit.start),
                                            "Guidance End": _number(unit.end), "Type": unit.type,
                                            "Mode": unit.mode or None, "Image": unit.image, "Map": unit.map or None,
                                            "Processor Res": unit.resolution,
                                            "Threshold A": _number(unit.threshold_a),
                                            "Threshold B": _number(unit.threshold_b),
                                            "Pixel Perfect": unit.pixel_perfect or None})
    for i, prompt in enumerate(request.image_prompts):
        fields["IP-Adapter" + (f" {i}" if i else "")] = _pairs(
            {"Adapter": prompt.adapter, "Images": " | ".join(prompt.images), "Weight": _number(prompt.scale),
             "Blocks": None if prompt.blocks == "all" else prompt.blocks})
    if request.true_cfg_scale is not None:
        fields["True CFG scale"] = _number(request.true_cfg_scale)
    for i, image in enumerate(request.references):
        fields[f"Reference {i}"] = image
    if request.batch_size > 1:
        fields["Batch size"] = request.batch_size
    fields.update(extra or {})
    lines.append(_pairs(fields))
    return "\n".join(lines)


def parse_params(line: str) -> dict[str, str]:
    """``"Steps: 20, Sampler: Euler a, Lora hashes: \\"a: 1, b: 2\\""`` -> {key: unquoted value}."""
    return {key.strip(): _unquote(value) for key, value in RE_PARAM.findall(line)}


def parse_infotext(text: str) -> dict[str, str]:
    """A1111/Forge "parameters" -> ``{"Prompt": ..., "Negative prompt": ..., <key>: <value>, ...}``.

    Values are strings, unquoted; every key is kept, known or not. Never raises on odd input.
    """
    lines = (text or "").replace("\r\n", "\n").split("\n")
    last = lines[-1] if lines else ""
    params: dict[str, str] = {}
    if len(RE_PARAM.findall(last)) >= 3:
        params = parse_params(last)
        lines = lines[:-1]
    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for line in lines:
        if not in_negative and line.startswith(NEGATIVE):
            in_negative = True
            line = line[len(NEGATIVE):]
            line = line[1:] if line.startswith(" ") else line
        (negative if in_negative else prompt).append(line)
    out = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    out.update(params)
    return out


RE_WHOLE = re.compile(r"[+-]?[0-9]{1,40}")


def _int(value: Any) -> int | None:
    """A whole number, exactly (a 64-bit seed never goes through a float), or None."""
    text = str(value).strip()
    if RE_WHOLE.fullmatch(text):
        return int(text)
    try:
        return int(float(text))
    except (TypeError, ValueError, OverflowError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


def _format_loras(loras: tuple[LoraSpec, ...]) -> str:
    """``name: weight, name2: weight2``; a JSON object when a name holds a comma or colon."""
    if any(c in lora.name for lora in loras for c in ',:"\n') or any(lo.name != lo.name.strip() for lo in loras):
        return json.dumps({lora.name: lora.weight for lora in loras}, ensure_ascii=False)
    return ", ".join(f"{lora.name}: {_number(float(lora.weight))}" for lora in loras)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _made(kind, notes: list[str] | None, what: str, *args: Any, **kwargs: Any):  # noqa: ANN001, ANN202
    """``kind(*args, **kwargs)``, or None with the reason in ``notes`` (foreign values may not fit:
    a LoRA weight of 100 is read, named, left out; never an error for the whole image)."""
    try:
        return kind(*args, **kwargs)
    except StudioError as err:
        if notes is None:
            raise
        notes.append(f"{what}: {err}; left out")
        return None


def _lora(notes: list[str] | None, name: str, weight: float, digest: str = "") -> LoraSpec | None:
    """A LoRA spec a request takes (its weight within the request's range), or None, named in ``notes``."""
    def checked(*args: Any) -> LoraSpec:
        spec = LoraSpec(*args)
        check_lora_weights((spec,))
        return spec

    return _made(checked, notes, f"LoRA {name!r}", name, weight, digest)


def _named_weights(value: str, notes: list[str] | None = None) -> list[LoraSpec]:
    value = value.strip()
    pairs: list[tuple[str, Any]] = []
    if value.startswith("{"):
        try:
            pairs = list(json.loads(value).items())
        except (json.JSONDecodeError, AttributeError):
            pairs = []
    else:
        for item in value.split(","):
            name, _, weight = item.rpartition(":")
            pairs.append((name.strip(), weight))
    out = []
    for name, weight in pairs:
        w = _float(weight)
        if name and w is not None:
            spec = _made(LoraSpec, notes, f"LoRA {name!r}", name, w)
            if spec is not None:
                out.append(spec)
    return out


def fields_from_infotext(parsed: dict[str, str] | str, notes: list[str] | None = None) -> dict[str, Any]:
    """Parsed A1111 keys -> ``GenerationRequest`` keyword arguments (only what is known).

    ``<lora:name:weight>`` tags are taken out of the prompt into ``loras`` (the studio applies
    LoRAs itself, not through prompt syntax). With ``notes``, a LoRA, ControlNet or IP-Adapter
    whose values do not fit a request is left out and named there (foreign text); without,
    ``InvalidRequest`` is raised (the studio's own text).
    """
    p = parse_infotext(parsed) if isinstance(parsed, str) else dict(parsed)
    prompt = p.get("Prompt", "")
    prompt, tagged = take_foreign(prompt)
    loras: dict[str, float] = dict(tagged)
    for spec in _named_weights(p.get("Loras", ""), notes):
        loras[spec.name] = spec.weight
    hashes = lora_hashes(p.get("Lora hashes", ""))
    fields: dict[str, Any] = {"prompt": prompt, "negative_prompt": p.get("Negative prompt", "")}
    if "Task" in p:
        fields["task"] = p["Task"]
    elif p.get("Init image"):
        fields["task"] = Task.IMG2IMG.value
    if p.get("Model"):
        fields["model_id"] = p["Model"]
    size = RE_SIZE.match(p.get("Size", ""))
    if size:
        fields["width"], fields["height"] = int(size.group(1)), int(size.group(2))
    # "Denoising strength" of a txt2img image is A1111's hires fix, which this studio does not do
    strength = ("Denoising strength", "strength", _float) if fields.get("task", "txt2img") != "txt2img" else None
    for key, name, conv in filter(None, (("Steps", "steps", _int), ("Seed", "seed", _int), strength,
                                         ("Batch size", "batch_size", _int))):
        value = conv(p[key]) if key in p else None
        if value is not None:
            fields[name] = value
    guidance = _float(p.get("Distilled CFG Scale")) if "Distilled CFG Scale" in p else _float(p.get("CFG scale"))
    if guidance is not None:
        fields["guidance"] = guidance
    if p.get("Sampler"):
        sampler = p["Sampler"]
        suffix = SCHEDULE_SUFFIX.get(p.get("Schedule type", "").strip().lower())
        fields["scheduler"] = f"{sampler} {suffix}" if suffix and not sampler.endswith(suffix) else sampler
    for key, name, choices in (("Resize mode", "resize_mode", RESIZE_MODES), ("Mask mode", "mask_mode", MASK_MODES),
                               ("Inpaint area", "inpaint_area", INPAINT_AREAS)):
        value = {label.lower(): value for value, label in choices.items()}.get(p.get(key, "").strip().lower())
        if value is not None:
            fields[name] = value
    for key, name in (("Mask blur", "mask_blur"), ("Masked area padding", "mask_padding")):
        value = _int(p[key]) if key in p else None
        if value is not None:
            fields[name] = value
    if p.get("Init image"):
        fields["init_image"] = p["Init image"]
    if p.get("Mask image"):
        fields["mask_image"] = p["Mask image"]
    specs = [_lora(notes, n, w, hashes.get(_hash_name(n), "")) for n, w in loras.items()]
    if any(specs):
        fields["loras"] = tuple(x for x in specs if x is not None)
    controls, ip_units = [], []
    for i in range(16):
        raw = p.get(f"ControlNet {i}")
        if raw is None:
            break
        c = parse_params(raw)
        if c.get("Module", "").lower().startswith("ip-adapter"):    # sd-webui-controlnet's IP-Adapter unit
            ip_units.append((i, c))
        elif c.get("Image"):
            module = c.get("Module", "none")
            if c.get("Preprocess") == "False":                     # written by request version 1
                module = "none"
            kind = c.get("Type") or _control_type(module, c.get("Model", ""))
            resolution = _int(c.get("Processor Res"))
            thresholds = _thresholds(module, c)
            controls.append(_made(ControlUnit, notes, f"ControlNet {i}", type=kind, image=c["Image"],
                                  model=_own_model(c.get("Model", ""), kind), mode=c.get("Mode", ""),
                                  map=c.get("Map", ""), scale=_or(_float(c.get("Weight")), 1.0),
                                  start=_or(_float(c.get("Guidance Start")), 0.0),
                                  end=_or(_float(c.get("Guidance End")), 1.0), preprocessor=module,
                                  resolution=resolution if resolution and 64 <= resolution <= 4096 else 512,
                                  pixel_perfect=c.get("Pixel Perfect", "").strip().lower() == "true",
                                  threshold_a=thresholds[0], threshold_b=thresholds[1]))
    if any(controls):
        fields["controls"] = tuple(x for x in controls if x is not None)
    prompts = []
    for i in range(8):
        raw = p.get("IP-Adapter" + (f" {i}" if i else ""))
        if raw is None:
            break
        ip = parse_params(raw)
        images = tuple(x.strip() for x in (ip.get("Images") or ip.get("Image") or "").split(" | ") if x.strip())
        if images:
            prompts.append(_made(ImagePrompt, notes, f"IP-Adapter {i}", images, adapter=ip.get("Adapter", ""),
                                 scale=_or(_float(ip.get("Weight")), 0.6), blocks=ip.get("Blocks") or "all"))
    prompts += _a1111_ip_units(ip_units, notes)
    if any(prompts):
        fields["image_prompts"] = tuple(x for x in prompts if x is not None)
    true_cfg = _float(p.get("True CFG scale")) if "True CFG scale" in p else None
    if true_cfg is not None:
        fields["true_cfg_scale"] = true_cfg
    references = tuple(p[f"Reference {i}"] for i in range(16) if p.get(f"Reference {i}"))
    if references:
        fields["references"] = references
    return fields


def _a1111_ip_units(units: list[tuple[int, dict]], notes: list[str] | None) -> list:
    """sd-webui-controlnet writes an IP-Adapter as a ControlNet unit: Module ``ip-adapter_clip_sd15``
    (the encoder), Model ``ip-adapter-plus_sd15 [c817b455]`` (the adapter), Weight. Its reference is
    not in the text: a unit with an ``Image`` becomes an image prompt, one without is named in
    ``notes`` (the reference has to be given again)."""
    out = []
    for i, unit in units:
        adapter = unit.get("Model", "").split(" [", 1)[0].strip()
        if adapter.lower() in ("", "none"):
            adapter = ""
        if unit.get("Image"):
            out.append(_made(ImagePrompt, notes, f"ControlNet {i}", (unit["Image"],), adapter=adapter,
                             scale=_or(_float(unit.get("Weight")), 1.0)))
        elif notes is not None:
            notes.append(f"ControlNet {i} is an IP-Adapter ({adapter or unit.get('Module')}, weight "
                         f"{unit.get('Weight', '1')}) whose reference image is not in the text: give it again in "
                         "the IP-Adapter tab")
    return out


CONTROL_WORDS = ("canny", "depth", "pose", "lineart", "scribble", "softedge", "normal", "seg", "tile", "mlsd",
                 "shuffle", "inpaint")


def _control_type(module: str, model: str) -> str:
    """A1111's Module (preprocessor) / Model names -> the kind of map: openpose_full -> pose."""
    text = f"{module} {model}".lower().replace("openpose", "pose").replace("midas", "depth").replace("zoe", "depth")
    return next((w for w in CONTROL_WORDS if w in text), module or "canny")


def _thresholds(module: str, unit: dict[str, str]) -> tuple[float | None, float | None]:
    """Threshold A / B, for a module that reads them (canny: low / high); A1111 writes them for every
    module, where they mean nothing here."""
    from studio.control import PREPROCESSORS

    pre = PREPROCESSORS.get(module)
    if pre is None or not pre.thresholds:
        return None, None
    return _float(unit.get("Threshold A")), _float(unit.get("Threshold B"))


def _own_model(model: str, kind: str) -> str:
    """A1111 writes "control_v11p_sd15_canny [d14c016b]": the name without the hash; the type alone
    (how this studio writes "the family's net") means no particular model."""
    name = model.split(" [", 1)[0].strip()
    return "" if name == kind else name


def request_from_infotext(text_or_parsed: str | dict[str, str], **overrides: Any) -> GenerationRequest:
    """Parsed (or raw) A1111 parameters -> a checked ``GenerationRequest`` (``InvalidRequest``
    names the field that does not fit, e.g. a size that is not a multiple of 16)."""
    fields = fields_from_infotext(text_or_parsed)
    fields.update(overrides)
    return GenerationRequest(**fields)
