"""ControlNets: what a net is (family, class, union modes) and which ones a model can use.

A net is a folder (diffusers layout) or a ``.safetensors`` file in ``models/controlnet/``, or a
hub repo of the catalog (``Family.controlnets``). Its family is read from its config's class (and,
for UNet nets, whether it has SDXL's ``text_time`` embedding) or, for a single file, from its keys;
a ``studio.json`` in the folder (``<stem>.json`` beside a file) may say ``family``, ``types`` and
``modes`` itself. A union net's modes are its ``studio.json`` ``modes``, else the family's
numbering up to the net's own mode count. No torch: configs and headers only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from studio.models.catalog import FAMILIES, Family, HubControlNet
from studio.models.header import read_header

GROUP_LABELS = {"flux": "FLUX.1", "sdxl": "SDXL", "sd15": "SD 1.5", "sd3": "SD 3"}


def group_of(family: Family) -> str:
    """Families whose nets are interchangeable share a group (FLUX.1 schnell and dev: "flux")."""
    return "flux" if family.controlnet_class == "FluxControlNetModel" else family.name


@dataclass(frozen=True, slots=True)
class ControlNetInfo:
    name: str                          # what a unit's ``model`` says (folder/file name, or hub repo id)
    source: str                        # a path, or a hub repo id
    group: str | None                  # flux | sdxl | sd15 | sd3; None: could not tell
    cls: str                           # diffusers class
    types: tuple[str, ...] = ()        # maps it reads (empty: not known)
    modes: dict[str, int] = field(default_factory=dict)
    num_modes: int = 0                 # union nets: how many modes it was built with
    hub: bool = False
    available: bool = True
    reason: str = ""                   # why not available, and what to do
    label: str = ""

    @property
    def union(self) -> bool:
        return self.num_modes > 0 or bool(self.modes)

    def describe(self) -> str:
        what = f"union: {', '.join(self.modes)}" if self.union else ", ".join(self.types) or "any map"
        where = "hub" if self.hub else "local"
        state = "" if self.available and not self.reason else \
            (" — not downloaded" if self.available else " — unavailable")
        return f"{self.label or self.name} ({where}; {what}){state}"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _from_config(cfg: dict) -> tuple[str | None, str, int]:
    """(group, class, number of union modes) from a diffusers ControlNet config."""
    cls = str(cfg.get("_class_name", ""))
    if cls == "FluxControlNetModel":
        return "flux", cls, int(cfg.get("num_mode") or 0)
    if cls.startswith("SD3ControlNet"):
        return "sd3", cls, 0
    if cls in ("ControlNetModel", "ControlNetUnionModel"):
        group = "sdxl" if cfg.get("addition_embed_type") == "text_time" else "sd15"
        return group, cls, int(cfg.get("num_control_type") or 0) if cls == "ControlNetUnionModel" else 0
    return None, cls, 0


def _from_keys(shapes: dict[str, list[int]]) -> tuple[str | None, str, int]:
    """(group, class, number of union modes) from a single file's tensor names and shapes."""
    keys = set(shapes)
    if "controlnet_x_embedder.weight" in keys or any(k.startswith("controlnet_single_blocks") for k in keys):
        shape = shapes.get("controlnet_mode_embedder.weight") or [0]
        return "flux", "FluxControlNetModel", int(shape[0])
    if "pos_embed_input.proj.weight" in keys:
        return "sd3", "SD3ControlNetModel", 0
    sd = any(k.startswith(("control_model.", "controlnet_cond_embedding", "input_hint_block")) for k in keys)
    if not sd:
        return None, "", 0
    sdxl = any("label_emb" in k or k.startswith("add_embedding") for k in keys)
    union = "task_embedding" in keys or "control_model.task_embedding" in keys
    shape = shapes.get("control_add_embedding.linear_1.weight")
    return ("sdxl" if sdxl else "sd15"), ("ControlNetUnionModel" if union else "ControlNetModel"), \
        (6 if union and not shape else 0)


def inspect_local(path: Path, family_modes: dict[str, int]) -> ControlNetInfo:
    """A net in the models folder, from its config (or keys) and its ``studio.json``."""
    side = _read_json(path / "studio.json" if path.is_dir() else path.with_suffix(".json"))
    reason = ""
    try:
        if path.is_dir():
            cfg = _read_json(path / "config.json")
            group, cls, num = _from_config(cfg) if cfg else (None, "", 0)
            if not cfg:
                reason = f"{path.name} has no config.json: not a diffusers ControlNet folder"
        else:
            group, cls, num = _from_keys(read_header(path).shapes)
    except (OSError, ValueError) as err:
        group, cls, num, reason = None, "", 0, f"{path.name} cannot be read ({err})"
    named = side.get("family")           # a group ("flux", "sdxl", "sd15") or a model family ("flux-schnell")
    group = (group_of(FAMILIES[named]) if named in FAMILIES else str(named)) if named else group
    modes = side.get("modes", side.get("control_modes"))
    modes = modes if isinstance(modes, dict) else None
    if modes is None and num:
        modes = {name: n for name, n in family_modes.items() if n < num}
    modes = {str(k): int(v) for k, v in (modes or {}).items()}
    types = tuple(side.get("types") or (sorted(modes) if modes else ()))
    return ControlNetInfo(path.name if path.is_dir() else path.stem, str(path), group, cls, types, modes,
                          num_modes=num or len(set(modes.values())), available=not reason, reason=reason,
                          label=str(side.get("label") or path.name))


def hub_info(net: HubControlNet, family: Family, *, cached: bool, offline: bool) -> ControlNetInfo:
    reason = ""
    if not cached:
        reason = (f"{net.repo} is not downloaded and the studio is offline. On a machine with network run "
                  f"`hf download {net.repo}` (same HF_HOME), or put a ControlNet folder in models/controlnet/"
                  if offline else "not downloaded yet: the first use downloads it (several GB)")
    return ControlNetInfo(net.repo, net.repo, group_of(family), net.cls or family.controlnet_class, net.types,
                          dict(net.modes), num_modes=len(set(net.modes.values())), hub=True,
                          available=cached or not offline, reason=reason, label=f"{net.label} ({net.repo})")
