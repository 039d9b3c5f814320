"""What can be used now: the catalog, the user's models folder and the hub cache.

Every entry says where it comes from and whether it can load now; when it cannot, ``reason``
says how to get it. Scanning reads file headers only (no torch, no weights).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from studio.config import ROOT, Settings
from studio.errors import InvalidRequest, ModelUnavailable
from studio.loras.library import LoraLibrary
from studio.loras.presets import FILE_NAME as PRESETS_FILE
from studio.loras.presets import PresetStore
from studio.models.catalog import (FAMILIES, FIRST_LAYER_KEYS, HUB_MODELS, TINY_RANDOM, Family, ModelSpec,
                                   detect_family, inpaint_variant)
from studio.models.controlnets import GROUP_LABELS, ControlNetInfo, group_of, hub_info, inspect_local
from studio.models.header import read_header
from studio.models.ip_adapters import IPAdapterInfo, IPAdapters

DEMO_ID = "demo"
DEMO_DIR = ROOT / "models" / "demo"      # ships with the code: listed whatever --models-dir says
PIPELINE_FAMILIES = {
    "FluxPipeline": "flux-schnell", "Flux2Pipeline": "flux2", "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusionPipeline": "sd15", "StableDiffusion3Pipeline": "sd3",
    "FluxFillPipeline": "flux-fill", "StableDiffusionXLInpaintPipeline": "sdxl-inpaint",
    "StableDiffusionInpaintPipeline": "sd15-inpaint",
}


@dataclass(frozen=True, slots=True)
class ModelEntry:
    spec: ModelSpec
    family: Family
    available: bool
    reason: str = ""                 # why not available, and how to fix it
    where: str = ""                  # folder, file or hub repo
    defaults: dict[str, object] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def label(self) -> str:
        return self.spec.display

    def default(self, name: str):
        """Model override (studio.json, catalog) first, then the family's."""
        if name in self.defaults:
            return self.defaults[name]
        return getattr(self.family, name)


def _first_layer_channels(shapes: dict[str, list[int]]) -> int | None:
    """Input channels of a single file's first layer (conv: [out, in, k, k]; linear: [out, in])."""
    for key in FIRST_LAYER_KEYS:
        for name in (key, f"transformer.{key}", f"model.diffusion_model.{key}"):
            if len(shapes.get(name, ())) >= 2:
                return int(shapes[name][1])
    return None


def _folder_channels(folder: Path) -> tuple[int | None, int | None]:
    """(in, out) channels of a diffusers folder's UNet or transformer, from its config."""
    for part in ("unet", "transformer"):
        try:
            cfg = json.loads((folder / part / "config.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        return cfg.get("in_channels"), cfg.get("out_channels")
    return None, None


def _sidecar(path: Path) -> dict:
    """``studio.json`` in a folder, or ``<stem>.json`` beside a single file: the user's word."""
    side = path / "studio.json" if path.is_dir() else path.with_suffix(".json")
    if side.is_file():
        try:
            return json.loads(side.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            return {"_error": f"{side.name} is not valid JSON ({err})"}
    return {}


def _defaults_from(meta: dict) -> dict[str, object]:
    out: dict[str, object] = {}
    for key in ("default_steps", "default_guidance", "max_sequence_length", "token_limit", "display_scale",
                "default_strength", "controlnets", "ip_adapter", "ip_true_cfg_scale"):
        if key in meta:
            out[key] = meta[key]
    if "width" in meta and "height" in meta:
        out["default_size"] = (int(meta["width"]), int(meta["height"]))
    for key in ("vocabulary", "prompt_template"):
        if meta.get(key):
            out[key] = meta[key]
    if meta.get("sizes"):
        out["sizes"] = tuple((int(w), int(h)) for w, h in meta["sizes"])
    if meta.get("prompt_template"):
        words = meta.get("vocabulary") or []
        out["prompt_hint"] = f"Prompts like: {meta['prompt_template']}" + (
            f". Words it knows: {', '.join(words)}." if words else "")
    if "max_sequence_length" in meta and "token_limit" not in meta:
        out["token_limit"] = meta["max_sequence_length"]
    return out


class Registry:
    def __init__(self, settings: Settings, hub_models: tuple[ModelSpec, ...] = HUB_MODELS,
                 demo_dir: Path | None = None) -> None:
        self._settings = settings
        self._hub_models = hub_models
        self._demo_dir = demo_dir if demo_dir is not None else DEMO_DIR
        self.lora_library = LoraLibrary(settings.models_dir / "loras", offline=settings.offline,
                                        shown=None if not getattr(settings, "public", False) else "models/loras")
        self.lora_presets = PresetStore(settings.models_dir / PRESETS_FILE)
        self.ip = IPAdapters(settings.models_dir / "ip_adapter", offline=settings.offline,
                             public=bool(getattr(settings, "public", False)))

    # -- listing ---------------------------------------------------------------------------
    def entries(self) -> list[ModelEntry]:
        out = []
        demo = self._folder_entry(self._demo_dir, model_id=DEMO_ID)
        if demo is not None:
            out.append(demo)
        out.append(ModelEntry(TINY_RANDOM, FAMILIES[TINY_RANDOM.family], True, where="built from configs",
                              defaults=dict(TINY_RANDOM.defaults)))
        out.extend(self._local_entries())
        out.extend(self._hub_entry(spec) for spec in self._hub_models)
        return out

    def ids(self) -> list[str]:
        return [e.id for e in self.entries()]

    def default_id(self) -> str:
        if self._settings.default_model:
            return self._settings.default_model
        for entry in self.entries():
            if entry.id == DEMO_ID and entry.available:
                return DEMO_ID
        return TINY_RANDOM.id

    def get(self, model_id: str) -> ModelEntry:
        model_id = model_id or self.default_id()
        entries = self.entries()
        for entry in entries:
            if entry.id == model_id:
                return entry
        known = ", ".join(e.id for e in entries)
        raise ModelUnavailable(f"unknown model {model_id!r}. Known models: {known}. Put local checkpoints in "
                               f"{self.shown('checkpoints')} (a .safetensors file or a diffusers folder).")

    def require(self, model_id: str) -> ModelEntry:
        entry = self.get(model_id)
        if not entry.available:
            raise ModelUnavailable(f"{entry.label} cannot be loaded now: {entry.reason}")
        return entry

    @property
    def checkpoints_dir(self) -> Path:
        """Where local checkpoints live (and merged ones are written)."""
        return self._settings.models_dir / "checkpoints"

    # -- LoRAs, ControlNets, IP-Adapters ---------------------------------------------------
    def loras(self) -> list[Path]:
        """The usable LoRA files (``lora_library`` has every one, with what it is)."""
        return [info.path for info in self.lora_library.scan() if not info.problem]

    def lora_names(self) -> list[str]:
        return [info.name for info in self.lora_library.scan() if not info.problem]

    def lora_path(self, name: str) -> Path:
        """A usable LoRA by name (``studio.loras.library``: a path under models/loras/, or the bare
        file name when one file has it; a hub LoRA as owner/repo/weights.safetensors)."""
        return self.lora_library.usable(name).path

    def adapters(self, kind: str) -> list[Path]:
        """ControlNets (``controlnet``) or IP-Adapters (``ip_adapter``): each a diffusers folder
        (or, for ControlNets, a single .safetensors file) in the models folder's ``<kind>/``."""
        folder = self._settings.models_dir / kind
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if not p.name.startswith(".")
                      and (p.is_dir() or p.suffix == ".safetensors"))

    def shown(self, kind: str) -> str:
        """A models sub-folder as messages name it: its path, or in public mode ``models/<kind>``
        (a visitor is told no folder of the server's)."""
        return str(self._settings.models_dir / kind) if self._paths_allowed() else f"models/{kind}"

    def _paths_allowed(self) -> bool:
        """A net or adapter named by its path on this machine: not in public mode (a visitor names
        only what the models folder and the catalog hold; a path is looked up as a name)."""
        return not getattr(self._settings, "public", False)

    def _adapter_path(self, kind: str, label: str, name: str) -> Path:
        direct = Path(name).expanduser()
        if direct.is_absolute() and self._paths_allowed() and direct.exists():
            return direct
        found = self.adapters(kind)
        for path in found:
            if name in (path.name, path.stem):
                return path
        known = ", ".join(p.name for p in found) or "none"
        raise ModelUnavailable(f"{label} {name!r} not found in {self.shown(kind)} (found: {known}). "
                               "Put its folder there.")

    # -- ControlNets ----------------------------------------------------------------------------------
    @property
    def models_dir(self) -> Path:
        return self._settings.models_dir

    @property
    def offline(self) -> bool:
        return self._settings.offline

    def controlnets(self, entry: ModelEntry) -> list[ControlNetInfo]:
        """The nets ``entry`` can use: its own (studio.json ``controlnets``), the models folder's nets of
        its family, and the catalog's hub nets for the family."""
        group = group_of(entry.family)
        own = {name for name in (entry.defaults.get("controlnets") or {}).values()}
        local = [self._local_net(p, entry) for p in self.adapters("controlnet")]
        mine = sorted((n for n in local if n.group == group), key=lambda n: (n.name not in own, n.name))
        return mine + [self._hub_net(net, entry.family) for net in entry.family.controlnets]

    def controlnet(self, name: str, entry: ModelEntry, control_type: str) -> ControlNetInfo:
        """The net a unit names ("": the model's own net for ``control_type``, else the first usable net
        of its family in models/controlnet/ that reads the type (what the user put there works
        offline), else the family's hub default), checked: of the model's family (``InvalidRequest``),
        and usable now (``ModelUnavailable`` saying how to get it)."""
        family = entry.family
        if not family.controlnet_class:
            raise InvalidRequest("controls", f"{entry.label} has no ControlNets")
        if not name:
            name = (entry.defaults.get("controlnets") or {}).get(control_type, "")
        if not name:
            name = next((n.name for n in self.controlnets(entry)
                         if not n.hub and n.available and control_type in n.types), "")
        if not name:
            hub = next((n for n in family.controlnets if control_type in n.types), None)
            if hub is None:
                known = sorted({t for n in family.controlnets for t in n.types})
                raise InvalidRequest("controls", f"{entry.label} has no ControlNet for {control_type!r}"
                                                 + (f" (the catalog's nets read {', '.join(known)})" if known else "")
                                                 + f": pick one from {self.shown('controlnet')} as the unit's model")
            name = hub.repo
        info = self._find_net(name, entry)
        group = group_of(family)
        if info.group != group:
            what = f"a {GROUP_LABELS.get(info.group, info.group)} net ({info.cls})" if info.group else \
                f"not a ControlNet this studio can tell the family of ({info.cls or 'no config'})"
            raise InvalidRequest("controls", f"ControlNet {info.name!r} is {what}; {entry.label} needs a "
                                             f"{GROUP_LABELS[group]} ControlNet ({family.controlnet_class})")
        if not info.available:
            raise ModelUnavailable(f"ControlNet {info.name}: {info.reason}")
        return info

    def _find_net(self, name: str, entry: ModelEntry) -> ControlNetInfo:
        direct = Path(name).expanduser()
        if direct.is_absolute() and self._paths_allowed() and direct.exists():
            return self._local_net(direct, entry)
        found = self.adapters("controlnet")
        for path in found:
            if name in (path.name, path.stem):
                return self._local_net(path, entry)
        for family in FAMILIES.values():        # a hub id, or A1111's name of one ("control_v11p_sd15_canny")
            for net in family.controlnets:
                if name in (net.repo, net.repo.rsplit("/", 1)[-1]):
                    return self._hub_net(net, family)
        known = ", ".join(p.name for p in found) or "none"
        raise ModelUnavailable(f"ControlNet {name!r} not found in {self.shown('controlnet')} (found: {known}) "
                               f"nor in the catalog. Put its folder there, or pick one of the list.")

    def _local_net(self, path: Path, entry: ModelEntry) -> ControlNetInfo:
        info = inspect_local(path, entry.family.control_modes)
        own = [t for t, n in (entry.defaults.get("controlnets") or {}).items() if n in (path.name, path.stem)]
        if info.union and own and not (path / "studio.json").is_file():
            # a union net the model names for some types: those are the modes it is known to have
            modes = {t: entry.family.control_modes[t] for t in own if t in entry.family.control_modes}
            info = dataclasses.replace(info, modes=modes, types=tuple(modes))
        return info

    def _hub_net(self, net, family: Family) -> ControlNetInfo:  # noqa: ANN001 - catalog.HubControlNet
        return hub_info(net, family, cached=hub_cached(net.repo, "config.json"), offline=self.offline)

    def ip_adapters(self, entry: ModelEntry) -> list[IPAdapterInfo]:
        """The IP-Adapters ``entry`` can use: its own, the local ones that fit, the catalog's."""
        return self.ip.for_model(entry) if entry.family.ip_adapter else []

    def ip_adapter(self, name: str, entry: ModelEntry) -> IPAdapterInfo:
        """The adapter ``name`` means ("": the model's own (studio.json ``ip_adapter``), else the
        catalog's default for its family), checked: of the family, with its encoder, usable now."""
        return self.ip.find(name, entry)

    # -- sources ---------------------------------------------------------------------------
    def _folder_entry(self, folder: Path, model_id: str) -> ModelEntry | None:
        index = folder / "model_index.json"
        if not index.is_file():
            return None
        meta = _sidecar(folder)
        try:
            class_name = json.loads(index.read_text(encoding="utf-8")).get("_class_name", "")
        except json.JSONDecodeError:
            class_name = ""
        family_name = meta.get("family") or PIPELINE_FAMILIES.get(class_name)
        if family_name == "flux-schnell" and "family" not in meta and _flux_has_guidance(folder):
            family_name = "flux-dev"
        if "family" not in meta and family_name:          # an inpainting checkpoint saved as its base class
            family_name = inpaint_variant(family_name, *_folder_channels(folder))
        label = meta.get("label") or f"{model_id} ({folder})"
        spec = ModelSpec(model_id, family_name or "unknown", str(folder), kind="folder", label=label,
                         defaults=_defaults_from(meta))
        if meta.get("_error"):
            return ModelEntry(spec, FAMILIES["sdxl"], False, reason=meta["_error"], where=str(folder))
        if family_name not in FAMILIES:
            return ModelEntry(spec, FAMILIES["sdxl"], False, where=str(folder),
                              reason=f"pipeline {class_name or '?'} is not supported; add studio.json with "
                                     f'{{"family": one of {sorted(FAMILIES)}}} to the folder')
        return ModelEntry(spec, FAMILIES[family_name], True, where=str(folder), defaults=spec.defaults)

    def _local_entries(self) -> list[ModelEntry]:
        folder = self._settings.models_dir / "checkpoints"
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):
                continue
            if path.is_dir():
                entry = self._folder_entry(path, model_id=path.name)
                if entry is not None:
                    out.append(entry)
            elif path.suffix == ".safetensors":
                out.append(self._file_entry(path))
        return out

    def _file_entry(self, path: Path) -> ModelEntry:
        meta = _sidecar(path)
        family_name = meta.get("family")
        reason = ""
        if not family_name:
            try:
                shapes = read_header(path).shapes
                family_name = detect_family(frozenset(shapes))
                if family_name:
                    family_name = inpaint_variant(family_name, _first_layer_channels(shapes))
            except (OSError, ValueError) as err:
                reason = f"{path.name} cannot be read as safetensors ({err})"
        spec = ModelSpec(path.stem, family_name or "unknown", str(path), kind="single_file",
                         label=meta.get("label") or f"{path.stem} ({path.name})", defaults=_defaults_from(meta),
                         config=meta.get("config", ""))
        if family_name not in FAMILIES:
            reason = reason or (f"could not tell the family of {path.name} from its keys; add {path.stem}.json "
                                f'beside it with {{"family": one of {sorted(FAMILIES)}}}')
            return ModelEntry(spec, FAMILIES["sdxl"], False, reason=reason, where=str(path))
        family = FAMILIES[family_name]
        config = meta.get("config") or family.base_repo
        # a single file needs its family's configs (and for FLUX, the text encoders and VAE)
        ok, why = self._hub_ready(config) if not Path(config).is_dir() else (True, "")
        return ModelEntry(spec, family, ok, reason=why and f"{path.name} needs the configs of {config}: {why}",
                          where=str(path), defaults=spec.defaults)

    def _hub_entry(self, spec: ModelSpec) -> ModelEntry:
        ok, why = self._hub_ready(spec.source)
        if not ok and spec.gated:
            why += f" ({spec.note})"
        return ModelEntry(spec, FAMILIES[spec.family], ok, reason=why, where=f"hub: {spec.source}",
                          defaults=dict(spec.defaults))

    def _hub_ready(self, repo: str) -> tuple[bool, str]:
        if hub_cached(repo):
            return True, ""
        if self._settings.offline:
            return False, (f"{repo} is not in the local Hugging Face cache and the studio is offline. On a machine "
                           f"with network run `hf download {repo}` (same HF_HOME), or start without --offline "
                           f"/ HF_HUB_OFFLINE to download it on first use.")
        return True, "not downloaded yet: the first use downloads it (several GB)"


def hub_cached(repo: str, filename: str = "model_index.json") -> bool:
    """Is a snapshot of ``repo`` (its ``filename``: a pipeline's model_index.json) in the local hub cache?"""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo, filename)
        return isinstance(found, str)
    except Exception:  # noqa: BLE001 - a malformed cache or repo id means "not cached"
        return False


def _flux_has_guidance(folder: Path) -> bool:
    cfg = folder / "transformer" / "config.json"
    try:
        return bool(json.loads(cfg.read_text(encoding="utf-8")).get("guidance_embeds"))
    except (OSError, json.JSONDecodeError):
        return False
