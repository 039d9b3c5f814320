"""A1111 "parameters" text: the lingua franca of PNG metadata between studios.

    <prompt>
    Negative prompt: <negative>
    Steps: 4, Sampler: Euler, CFG scale: 0.0, Seed: 42, Size: 1024x1024, Model: flux-schnell
"""

from __future__ import annotations

from studio.requests import GenerationRequest


def _quote(value: str) -> str:
    """A1111 quotes a value holding a comma, colon or quote as a JSON string."""
    import json

    text = str(value)
    if "," in text or ":" in text or '"' in text or "\n" in text:
        return json.dumps(text, ensure_ascii=False)
    return text


def format_infotext(request: GenerationRequest, seed: int, *, model_label: str | None = None,
                    sampler: str | None = None, extra: dict[str, object] | None = None) -> str:
    """The A1111 text for one image of a resolved request (its own seed)."""
    lines = [request.prompt]
    if request.negative_prompt:
        lines.append(f"Negative prompt: {request.negative_prompt}")
    fields: dict[str, object] = {
        "Steps": request.steps,
        "Sampler": sampler or request.scheduler or "Euler",
        "CFG scale": request.guidance,
        "Seed": seed,
        "Size": f"{request.width}x{request.height}",
        "Model": model_label or request.model_id,
    }
    if request.strength is not None:
        fields["Denoising strength"] = request.strength
    if request.loras:
        fields["Lora hashes"] = ", ".join(f"{lora.name}: {lora.weight:g}" for lora in request.loras)
    if request.batch_size > 1:
        fields["Batch size"] = request.batch_size
    fields.update(extra or {})
    lines.append(", ".join(f"{key}: {_quote(str(value))}" for key, value in fields.items() if value is not None))
    return "\n".join(lines)
