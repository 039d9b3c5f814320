"""What a LoRA file says about itself: the metadata kohya's sd-scripts (``ss_*``) and ModelSpec
(``modelspec.*``) write, plus A1111's per-LoRA user metadata (``<name>.json`` beside the file:
"activation text", "preferred weight", "description", "sd version"). Plain strings: the UI shows
them as text, never as markup (metadata is whatever the file's author wrote).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_TAGS = 12


@dataclass(frozen=True, slots=True)
class Facts:
    title: str = ""
    description: str = ""
    base_model: str = ""
    trigger_words: tuple[str, ...] = ()
    tags: tuple[tuple[str, int], ...] = ()      # most frequent training tags (ss_tag_frequency), with counts
    resolution: str = ""
    preferred_weight: float | None = None
    sd_version: str = ""                         # A1111's user metadata (SD1, SDXL, ...): a hint, keys decide
    metadata: tuple[tuple[str, str], ...] = ()   # everything in the header's __metadata__, sorted

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "description": self.description, "base_model": self.base_model,
                "trigger_words": list(self.trigger_words), "tags": [t for t, _ in self.tags],
                "resolution": self.resolution, "preferred_weight": self.preferred_weight}


def _resolution(meta: dict[str, str]) -> str:
    text = meta.get("modelspec.resolution") or meta.get("ss_resolution") or ""
    numbers = re.findall(r"\d+", text)
    return f"{numbers[0]}x{numbers[1]}" if len(numbers) >= 2 else (f"{numbers[0]}x{numbers[0]}" if numbers else "")


def _tags(meta: dict[str, str]) -> tuple[tuple[str, int], ...]:
    try:
        data = json.loads(meta.get("ss_tag_frequency") or "{}")
    except json.JSONDecodeError:
        return ()
    counts: Counter = Counter()
    for dataset in data.values() if isinstance(data, dict) else ():
        if isinstance(dataset, dict):
            for tag, n in dataset.items():
                if isinstance(n, int | float):
                    counts[str(tag).strip()] += int(n)
    return tuple((t, n) for t, n in counts.most_common(MAX_TAGS) if t)


def _sidecar(path: Path) -> dict[str, Any]:
    side = path.with_suffix(".json")
    try:
        data = json.loads(side.read_text(encoding="utf-8")) if side.is_file() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _words(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(w.strip() for w in (text or "").split(",") if w.strip()))


def read_facts(meta: dict[str, str], path: Path) -> Facts:
    side = _sidecar(path)
    base = meta.get("ss_sd_model_name") or meta.get("ss_base_model_name_or_path") or ""
    arch = meta.get("modelspec.architecture") or meta.get("ss_base_model_version") or ""
    base_model = f"{base} ({arch})" if base and arch else (base or arch)
    weight = side.get("preferred weight")
    preferred = float(weight) if isinstance(weight, int | float) and math.isfinite(weight) and weight else None
    return Facts(
        title=meta.get("modelspec.title") or meta.get("ss_output_name") or "",
        description=meta.get("modelspec.description") or str(side.get("description") or ""),
        base_model=base_model,
        trigger_words=_words(meta.get("modelspec.trigger_phrase", "")) + _words(str(side.get("activation text") or "")),
        tags=_tags(meta), resolution=_resolution(meta), preferred_weight=preferred,
        sd_version=str(side.get("sd version") or "") if str(side.get("sd version") or "") != "Unknown" else "",
        metadata=tuple(sorted(meta.items())))
