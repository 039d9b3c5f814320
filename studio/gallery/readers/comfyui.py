"""ComfyUI: the ``prompt`` chunk (the API graph that ran, as ``SaveImage`` writes it: node id ->
``{"class_type", "inputs"}``, a link being ``[node id, output slot]``), or, when only the
``workflow`` chunk is there, the editor's graph turned into that form (``comfyui_workflow``).

Everything is found by following links from the node that saved the image, never by node ids:

* the output: a ``Save``/``Preview`` node with an ``images`` input (several: the one whose image
  size matches, else the one with the most sampling passes behind it, i.e. the final pass);
* the sampler: the nearest ``KSampler``/``KSamplerAdvanced``/``SamplerCustom``/
  ``SamplerCustomAdvanced`` upstream (for the last, its ``noise``, ``guider``, ``sampler`` and
  ``sigmas`` nodes: ``RandomNoise``, ``CFGGuider``/``BasicGuider``, ``KSamplerSelect``,
  ``BasicScheduler``); a value given by a link (a primitive, a seed node) is followed to it;
* the prompts: text encoders upstream of ``positive``/``negative`` (through ``ConditioningCombine``,
  ``FluxGuidance``, ControlNet nodes...); several are joined with ", ";
* the size: the first latent upstream with a width and height (``EmptyLatentImage``, ``EmptySD3LatentImage``,
  ``LatentUpscale``...); an image encoded from a ``LoadImage`` means img2img, its input not in the file;
* the model and LoRAs: the chain of ``model`` inputs up to the checkpoint or UNet loader, with
  every LoRA loader on the way (``strength_model`` is the weight).
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from studio.gallery.readers import Reading, Size, Unreadable
from studio.gallery.readers.comfyui_workflow import to_graph
from studio.gallery.readers.values import json_value, kind_of, lora, put, real, sampler, stem, unique_loras, whole

SOURCE = "ComfyUI"
Graph = dict[str, dict[str, Any]]
SAMPLER_KINDS = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")
TEXT_KEYS = ("text", "text_g", "text_l", "t5xxl", "clip_l", "prompt", "string", "value")
NOT_CONDITIONING = {"clip", "model", "vae", "image", "images", "pixels", "mask", "control_net", "clip_vision",
                    "clip_vision_output", "samples", "latent", "latent_image", "style_model"}
SCALAR_KEYS = ("value", "seed", "noise_seed", "int", "number", "float", "steps", "cfg", "guidance", "text", "string")


def read(chunks: dict[str, str], size: Size) -> Reading | None:
    raw, parameters = chunks.get("prompt"), None
    if raw is not None:
        graph = json_value(raw)
        if not isinstance(graph, dict):
            raise Unreadable(f"ComfyUI 'prompt' is {kind_of(graph) if graph is not None else 'not JSON'}, "
                             "not a graph of nodes")
        parameters = graph
    elif chunks.get("workflow") is not None:
        raw = chunks["workflow"]
        parameters = json_value(raw)
        if parameters is None:
            raise Unreadable("ComfyUI 'workflow' is not JSON")
        graph = to_graph(parameters)
    else:
        return None
    graph = {str(k): v for k, v in graph.items()
             if isinstance(v, dict) and isinstance(v.get("class_type"), str) and isinstance(v.get("inputs", {}), dict)}
    if not graph:
        raise Unreadable("ComfyUI graph holds no nodes (no objects with a class_type)")
    notes: list[str] = []
    fields = _fields(graph, size, notes)
    if fields is None:
        raise Unreadable("ComfyUI graph: no sampler node is reached from the node that saved the image")
    return Reading("comfyui", fields, parameters, raw, "", (), tuple(notes))


def _inputs(graph: Graph, node_id: str | None) -> dict[str, Any]:
    node = graph.get(node_id or "") or {}
    return node.get("inputs") or {}


def _kind(graph: Graph, node_id: str | None) -> str:
    return str((graph.get(node_id or "") or {}).get("class_type", ""))


def _link(value: Any) -> str | None:
    """The node a link points at (``[id, slot]``), or None for a plain value."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int)) and isinstance(value[1], int):
        return str(value[0])
    return None


def _upstream(graph: Graph, start: str | None, want, skip: set[str] = frozenset(), limit: int = 400) -> list[str]:  # noqa: ANN001
    """Nodes upstream of ``start`` (itself included) for which ``want(kind)`` holds, nearest first,
    following every link input except those named in ``skip``."""
    found, seen, queue = [], set(), deque([start] if start else [])
    while queue and len(seen) < limit:
        node_id = queue.popleft()
        if node_id in seen or node_id not in graph:
            continue
        seen.add(node_id)
        if want(_kind(graph, node_id)):
            found.append(node_id)
        for name, value in _inputs(graph, node_id).items():
            target = _link(value)
            if target is not None and name not in skip:
                queue.append(target)
    return found


def _value(graph: Graph, value: Any, depth: int = 0) -> Any:
    """A widget value, following a link to the node that gives it (a primitive, a seed node)."""
    target = _link(value)
    if target is None or depth > 10:
        return None if target is not None else value
    inputs = _inputs(graph, target)
    for key in SCALAR_KEYS:
        if key in inputs:
            return _value(graph, inputs[key], depth + 1)
    plain = [v for v in inputs.values() if _link(v) is None]
    if len(plain) == 1:
        return plain[0]
    links = [v for v in inputs.values() if _link(v) is not None]
    return _value(graph, links[0], depth + 1) if len(links) == 1 else None


def _is_sampler(kind: str) -> bool:
    return kind in SAMPLER_KINDS or kind.startswith("KSampler") or kind.endswith("KSampler")


def _outputs(graph: Graph) -> list[str]:
    savers = [i for i, n in graph.items() if ("Save" in n["class_type"] or "Preview" in n["class_type"])
              and "images" in (n.get("inputs") or {})]
    if savers:
        return savers
    used = {_link(v) for n in graph.values() for v in (n.get("inputs") or {}).values()}
    return [i for i in graph if i not in used]


def _fields(graph: Graph, size: Size, notes: list[str]) -> dict[str, Any] | None:
    candidates = []       # (size matches, passes behind it, output, sampler)
    for output in _outputs(graph):
        samplers = _upstream(graph, output, _is_sampler)
        if samplers:
            width_height = _size(graph, _sampler_parts(graph, samplers[0])["latent_image"], [])
            candidates.append((width_height == tuple(size), len(samplers), output, samplers[0]))
    if not candidates:
        return None
    best = max(candidates, key=lambda c: (c[0], c[1]))
    if len({c[3] for c in candidates}) > 1:
        notes.append(f"this graph saves {len(candidates)} images; read the one its {_kind(graph, best[3])} "
                     f"(node {best[3]}) made")
    return _from_sampler(graph, best[3], notes)


def _sampler_parts(graph: Graph, node_id: str) -> dict[str, Any]:
    """A sampler's settings wherever they live (its own inputs, or its noise/guider/sampler/sigmas nodes)."""
    own = _inputs(graph, node_id)
    guider = _inputs(graph, _link(own.get("guider")))
    sigmas = _inputs(graph, _link(own.get("sigmas")))
    chooser = _inputs(graph, _link(own.get("sampler")))
    noise = _inputs(graph, _link(own.get("noise")))
    pick = lambda *pairs: next((d[k] for d, k in pairs if k in d), None)  # noqa: E731
    return {
        "seed": pick((own, "seed"), (own, "noise_seed"), (noise, "noise_seed"), (noise, "seed")),
        "steps": pick((own, "steps"), (sigmas, "steps")),
        "cfg": pick((own, "cfg"), (guider, "cfg")),
        "sampler_name": pick((own, "sampler_name"), (chooser, "sampler_name")),
        "scheduler": pick((own, "scheduler"), (sigmas, "scheduler")),
        "denoise": pick((own, "denoise"), (sigmas, "denoise")),
        "positive": pick((own, "positive"), (guider, "positive"), (guider, "conditioning")),
        "negative": pick((own, "negative"), (guider, "negative")),
        "model": pick((own, "model"), (guider, "model"), (sigmas, "model")),
        "latent_image": own.get("latent_image"),
    }


def _from_sampler(graph: Graph, node_id: str, notes: list[str]) -> dict[str, Any]:
    parts = _sampler_parts(graph, node_id)
    fields: dict[str, Any] = {}
    for name, key, conv in (("seed", "seed", whole), ("steps", "steps", whole), ("guidance", "cfg", real)):
        value = conv(_value(graph, parts[key]))
        if value is None and parts[key] is not None:
            notes.append(f"ComfyUI {_kind(graph, node_id)} {key} is {json.dumps(parts[key])}, which gives no "
                         "number; left out")
        put(fields, name, value)
    flux = _upstream(graph, _link(parts["positive"]), lambda k: k in ("FluxGuidance", "CLIPTextEncodeFlux"),
                     NOT_CONDITIONING)
    if flux:                       # FLUX's distilled guidance is what the studio calls guidance there
        put(fields, "guidance", real(_value(graph, _inputs(graph, flux[0]).get("guidance"))))
    put(fields, "scheduler", sampler(_value(graph, parts["sampler_name"]), _value(graph, parts["scheduler"])))
    fields["prompt"] = _texts(graph, parts["positive"], notes, "prompt")
    if not fields["prompt"] and parts["positive"] is not None:
        notes.append("ComfyUI: no text encoder is reached from the sampler's positive input; the prompt is empty")
    put(fields, "negative_prompt", _texts(graph, parts["negative"], notes, "negative prompt") or None)
    width_height = _size(graph, parts["latent_image"], notes)
    if width_height:
        fields["width"], fields["height"] = width_height
    model, loras = _model_chain(graph, _link(parts["model"]), notes)
    put(fields, "model_id", model)
    if loras:
        fields["loras"] = unique_loras(loras)
    return fields


def _texts(graph: Graph, ref: Any, notes: list[str], what: str) -> str:
    """The text encoded into a conditioning, through combine/guidance/ControlNet nodes."""
    found: list[str] = []
    for node_id in _upstream(graph, _link(ref), lambda k: True, NOT_CONDITIONING):
        inputs = _inputs(graph, node_id)
        for key in TEXT_KEYS:
            if key in inputs and (key != "value" or "Primitive" in _kind(graph, node_id)):
                value = _value(graph, inputs[key])
                if isinstance(value, str) and value.strip() and value.strip() not in found:
                    found.append(value.strip())
    if len(found) > 1:
        notes.append(f"ComfyUI {what}: {len(found)} texts are combined in the graph; joined with ', '")
    return ", ".join(found)


def _size(graph: Graph, ref: Any, notes: list[str]) -> tuple[int, int] | None:
    scale = 1.0
    for node_id in _upstream(graph, _link(ref), lambda k: True, {"model", "vae", "positive", "negative", "clip"}):
        kind, inputs = _kind(graph, node_id), _inputs(graph, node_id)
        width, height = whole(_value(graph, inputs.get("width"))), whole(_value(graph, inputs.get("height")))
        if kind.startswith(("Empty", "LatentUpscale")) and width and height:
            return round(width * scale), round(height * scale)
        if kind == "LatentUpscaleBy":
            scale *= real(_value(graph, inputs.get("scale_by"))) or 1.0
        if kind.startswith("VAEEncode"):
            loaders = _upstream(graph, node_id, lambda k: k.startswith("LoadImage"))
            image = _value(graph, _inputs(graph, loaders[0]).get("image")) if loaders else None
            notes.append("ComfyUI img2img: its input image" + (f" ({image})" if isinstance(image, str) else "")
                         + " is not in the file; read as txt2img")
            return None
    return None


def _model_chain(graph: Graph, start: str | None, notes: list[str]) -> tuple[str | None, list]:
    """The checkpoint (or UNet) at the top of the ``model`` chain, and the LoRAs on the way (upstream first)."""
    loras, node_id, seen = [], start, set()
    while node_id and node_id not in seen and node_id in graph:
        seen.add(node_id)
        kind, inputs = _kind(graph, node_id), _inputs(graph, node_id)
        name = _value(graph, inputs.get("ckpt_name") or inputs.get("unet_name"))
        if isinstance(name, str):
            return stem(name), loras[::-1]
        if "Lora" in kind:
            if isinstance(_value(graph, inputs.get("lora_name")), str):
                spec = lora(_value(graph, inputs["lora_name"]), _value(graph, inputs.get("strength_model", 1.0)),
                            notes, SOURCE)
                loras += [spec] if spec else []
            for value in inputs.values():          # stacks: {"on": true, "lora": name, "strength": w}
                if isinstance(value, dict) and isinstance(value.get("lora"), str) and value.get("on", True):
                    spec = lora(value["lora"], value.get("strength", 1.0), notes, SOURCE)
                    loras += [spec] if spec else []
        node_id = _link(inputs.get("model"))
    return None, loras[::-1]
