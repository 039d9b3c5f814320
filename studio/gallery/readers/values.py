"""Small, forgiving conversions the readers share: foreign metadata is read, never trusted.

Every function takes whatever a JSON value or a text field may hold (None, a number, a string, a
list, NaN...) and returns the value or None; nothing here raises. Whole numbers stay exact (a
64-bit seed never goes through a float).
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any

from studio.errors import StudioError
from studio.requests import LoraSpec

RE_WHOLE = re.compile(r"[+-]?[0-9]{1,40}")
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")

# Other tools' sampler names -> the A1111 names this studio (and A1111, Forge, Civitai) use. ComfyUI,
# SwarmUI and Fooocus share ComfyUI's (``sample_`` was its old prefix); InvokeAI's ``_k`` means
# Karras; NovelAI's start with ``k_``. Names not here are kept as written.
SAMPLER_NAMES = {
    "euler": "Euler", "euler_ancestral": "Euler a", "euler_a": "Euler a", "heun": "Heun", "lms": "LMS",
    "dpm_2": "DPM2", "dpm_2_ancestral": "DPM2 a", "kdpm_2": "DPM2", "kdpm_2_a": "DPM2 a",
    "dpmpp_2s_ancestral": "DPM++ 2S a", "dpmpp_sde": "DPM++ SDE", "dpmpp_sde_gpu": "DPM++ SDE",
    "dpmpp_2m": "DPM++ 2M", "dpmpp_2m_sde": "DPM++ 2M SDE", "dpmpp_2m_sde_gpu": "DPM++ 2M SDE",
    "dpmpp_3m_sde": "DPM++ 3M SDE", "dpmpp_3m_sde_gpu": "DPM++ 3M SDE", "dpmpp_3m": "DPM++ 3M",
    "ddim": "DDIM", "uni_pc": "UniPC", "uni_pc_bh2": "UniPC", "unipc": "UniPC", "lcm": "LCM",
    "dpm_fast": "DPM fast", "dpm_adaptive": "DPM adaptive", "restart": "Restart", "pndm": "PLMS",
}
SCHEDULE_NAMES = {"karras": "Karras", "exponential": "Exponential", "sgm_uniform": "SGM Uniform"}


def whole(value: Any) -> int | None:
    """A whole number, exactly: 42, "42", "6952411511246973023", 42.0; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and RE_WHOLE.fullmatch(value.strip()):
        return int(value.strip())
    number_ = real(value)
    return int(number_) if number_ is not None and number_.is_integer() else None


def real(value: Any) -> float | None:
    """A finite number (int, float or numeric text), else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        return None
    return out if math.isfinite(out) else None


def text(value: Any) -> str | None:
    """A string as it is; numbers are not text (a prompt of ``5`` is a shape error)."""
    return value if isinstance(value, str) else None


def stem(name: Any) -> str:
    """``"sdxl/juggernautXL_v8.safetensors"`` -> ``"juggernautXL_v8"``: a model or LoRA by its file's
    name, as the studio's folders list them (folders and known weight suffixes dropped)."""
    if not isinstance(name, str):
        return ""
    base = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].strip()
    for suffix in MODEL_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def sampler(name: Any, schedule: Any = "") -> str | None:
    """A foreign sampler (+ schedule) as A1111 names it: ("dpmpp_2m", "karras") -> "DPM++ 2M Karras";
    InvokeAI "dpmpp_2m_k" the same; unknown names as written."""
    if not isinstance(name, str) or not name.strip():
        return None
    key = name.strip().lower().removeprefix("sample_").removeprefix("k_")
    karras = key.endswith("_k") and key[:-2] in SAMPLER_NAMES
    key = key[:-2] if karras else key
    out = SAMPLER_NAMES.get(key, name.strip())
    suffix = "Karras" if karras else SCHEDULE_NAMES.get(str(schedule or "").strip().lower(), "")
    return f"{out} {suffix}" if suffix and out in SAMPLER_NAMES.values() else out


def size_pair(value: Any) -> tuple[int, int] | None:
    """Fooocus's ``"(1024, 1024)"`` (or a list of two numbers) -> (1024, 1024)."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value.strip())       # literals only: no code runs
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        width, height = whole(value[0]), whole(value[1])
        if width and height and width > 0 and height > 0:
            return width, height
    return None


def json_value(raw: Any) -> Any:
    """Parsed JSON, or None when ``raw`` is not JSON text."""
    if not isinstance(raw, str):
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def kind_of(value: Any) -> str:
    """What a JSON value is, for messages: "an object", "a list", "a number"..."""
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def lora(name: Any, weight: Any, notes: list[str], source: str) -> LoraSpec | None:
    """A checked LoRA from foreign values; a bad one is left out and named in ``notes``."""
    clean = stem(name)
    if not clean or clean == "None":
        return None
    value = real(weight)
    if value is None:
        notes.append(f"{source} LoRA {clean!r} has weight {weight!r}, not a number; left out")
        return None
    try:
        return LoraSpec(clean, value)
    except StudioError as err:
        notes.append(f"{source} LoRA {clean!r}: {err}; left out")
        return None


def unique_loras(loras: list[LoraSpec]) -> tuple[LoraSpec, ...]:
    """Each LoRA once (the first), as requests require."""
    seen: dict[str, LoraSpec] = {}
    for spec in loras:
        seen.setdefault(spec.name, spec)
    return tuple(seen.values())


def put(fields: dict[str, Any], name: str, value: Any) -> None:
    """Set ``fields[name]`` when ``value`` is known."""
    if value is not None:
        fields[name] = value


def bad_shape(notes: list[str], source: str, key: str, value: Any, expected: str) -> None:
    """Name a value of the wrong shape (read, not used)."""
    shown = json.dumps(value, ensure_ascii=False, default=str)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    notes.append(f"{source} {key!r} is {shown}, not {expected}; left out")


def read_fields(fields: dict[str, Any], notes: list[str], source: str, data: dict[str, Any],
                table: tuple[tuple[str, str, Any], ...]) -> None:
    """For each ``(name, key, conv)`` in ``table``: ``fields[name] = conv(data[key])`` when the key is
    there; a value ``conv`` can't read (None) is named in ``notes`` and left out."""
    for name, key, conv in table:
        if key in data:
            value = conv(data[key])
            if value is None:
                bad_shape(notes, source, key, data[key], "text" if conv is text else "a number")
            put(fields, name, value)
