"""ComfyUI's ``workflow`` chunk (the editor's graph) -> the ``prompt`` form (the API graph that ran),
for images that carry only the workflow (saved from the editor, or by tools that keep only it).

The workflow lists ``nodes`` (``id``, ``type``, ``mode``, ``inputs`` with a ``link`` each,
``widgets_values``) and ``links`` (``[id, origin node, origin slot, target node, target slot,
type]``, or objects with those names in newer files). Inputs become ``[origin id, slot]`` as in
the API graph; widget values get their names from ``WIDGETS`` (the core nodes' widget order), a
``PrimitiveNode``'s value is ``value``. Muted and bypassed nodes (mode 2, 4) did not run.
"""

from __future__ import annotations

from typing import Any

from studio.gallery.readers import Unreadable

SEED = ("control_after_generate",)
WIDGETS: dict[str, tuple[str, ...]] = {
    "KSampler": ("seed", *SEED, "steps", "cfg", "sampler_name", "scheduler", "denoise"),
    "KSamplerAdvanced": ("add_noise", "noise_seed", *SEED, "steps", "cfg", "sampler_name", "scheduler",
                         "start_at_step", "end_at_step", "return_with_leftover_noise"),
    "SamplerCustom": ("add_noise", "noise_seed", *SEED, "cfg"),
    "RandomNoise": ("noise_seed", *SEED),
    "KSamplerSelect": ("sampler_name",),
    "BasicScheduler": ("scheduler", "steps", "denoise"),
    "CFGGuider": ("cfg",),
    "FluxGuidance": ("guidance",),
    "CLIPTextEncode": ("text",),
    "CLIPTextEncodeSDXL": ("width", "height", "crop_w", "crop_h", "target_width", "target_height", "text_g", "text_l"),
    "CLIPTextEncodeFlux": ("clip_l", "t5xxl", "guidance"),
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "EmptySD3LatentImage": ("width", "height", "batch_size"),
    "LatentUpscale": ("upscale_method", "width", "height", "crop"),
    "LatentUpscaleBy": ("upscale_method", "scale_by"),
    "CheckpointLoaderSimple": ("ckpt_name",),
    "CheckpointLoader": ("config_name", "ckpt_name"),
    "unCLIPCheckpointLoader": ("ckpt_name",),
    "UNETLoader": ("unet_name", "weight_dtype"),
    "LoraLoader": ("lora_name", "strength_model", "strength_clip"),
    "LoraLoaderModelOnly": ("lora_name", "strength_model"),
    "LoadImage": ("image", "upload"),
    "SaveImage": ("filename_prefix",),
    "PrimitiveNode": ("value", *SEED),
    "VAELoader": ("vae_name",),
    "CLIPSetLastLayer": ("stop_at_clip_layer",),
    "ConditioningSetArea": ("width", "height", "x", "y", "strength"),
}
NOT_RUN = (2, 4)        # muted, bypassed


def _links(workflow: dict[str, Any]) -> dict[Any, tuple[str, int]]:
    out: dict[Any, tuple[str, int]] = {}
    for link in workflow.get("links") or ():
        if isinstance(link, list) and len(link) >= 5:
            out[link[0]] = (str(link[1]), link[2])
        elif isinstance(link, dict) and "id" in link:
            out[link["id"]] = (str(link.get("origin_id")), link.get("origin_slot", 0))
    return out


def to_graph(workflow: Any) -> dict[str, dict[str, Any]]:
    """The API-graph form of an editor workflow (see the module doc)."""
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        raise Unreadable("ComfyUI 'workflow' is not an editor workflow (no list of nodes)")
    links = _links(workflow)
    graph: dict[str, dict[str, Any]] = {}
    for node in workflow["nodes"]:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str) or node.get("mode") in NOT_RUN:
            continue
        inputs: dict[str, Any] = {}
        for slot in node.get("inputs") or ():
            if isinstance(slot, dict) and slot.get("link") in links:
                origin, origin_slot = links[slot["link"]]
                inputs[str(slot.get("name") or "input")] = [origin, origin_slot]
        values = node.get("widgets_values")
        if isinstance(values, dict):              # some custom nodes keep their widgets by name
            for name, value in values.items():
                inputs.setdefault(str(name), value)
        elif isinstance(values, list):
            names = WIDGETS.get(node["type"]) or _guessed(node["type"], values)
            for name, value in zip(names, values, strict=False):
                inputs.setdefault(name, value)
        graph[str(node.get("id"))] = {"class_type": node["type"], "inputs": inputs}
    return graph


def _guessed(kind: str, values: list[Any]) -> tuple[str, ...]:
    """Widget names of a node this table does not know: a text encoder's first text is its ``text``;
    the rest are ``widget_<i>`` (kept, not read)."""
    names = [f"widget_{i}" for i in range(len(values))]
    if "TextEncode" in kind or "Prompt" in kind or "String" in kind or "Text" in kind:
        first = next((i for i, v in enumerate(values) if isinstance(v, str)), None)
        if first is not None:
            names[first] = "text"
    return tuple(names)
