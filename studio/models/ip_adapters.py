"""IP-Adapters: the catalog's hub adapters per architecture, what a local adapter is, and which
adapter a request means (checked: of the model's family, with its image encoder, usable now).

An adapter is a folder in ``models/ip_adapter/`` (one ``.safetensors`` in h94's or XLabs' layout
plus ``image_encoder/``, the vision model it was trained with; ``studio.json`` may say ``family``),
or a hub file of the catalog (``IP_ADAPTERS``) whose encoder is a hub folder too. Its architecture
is told from its keys: FLUX adapters project into double blocks (``double_blocks.*`` or biased
``to_k_ip``), SD ones into every cross-attention of the UNet, whose width (768 SD1.5, 2048 SDXL)
or count (16 SD1.5, 70 SDXL) names the family. Whatever the keys say, an adapter must also fit
the model's own config (cross-attention / joint-attention width) when the model folder has one.
No torch: headers and configs only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from studio.errors import InvalidRequest, ModelUnavailable
from studio.models.catalog import FAMILIES
from studio.models.header import read_header

HUB = "hub:"
ARCH_LABELS = {"flux1": "FLUX.1", "sdxl": "SDXL", "sd15": "SD 1.5"}


@dataclass(frozen=True, slots=True)
class HubIPAdapter:
    """An adapter file on the hub and the image encoder it was trained with (a hub folder)."""

    repo: str
    weight: str                 # the file in the repo
    label: str
    encoder: str                # repo[/subfolder] of its image encoder

    @property
    def name(self) -> str:
        return f"{self.repo}/{self.weight}"


_H94 = "h94/IP-Adapter"
VIT_H = f"{_H94}/models/image_encoder"          # OpenCLIP ViT-H/14 (also for SDXL's "vit-h" adapters)
VIT_BIGG = f"{_H94}/sdxl_models/image_encoder"  # OpenCLIP ViT-bigG/14 (SDXL's original adapter)
CLIP_L = "openai/clip-vit-large-patch14"        # XLabs' FLUX adapters
# per architecture (Family.lora_family), the first is the family's default
IP_ADAPTERS: dict[str, tuple[HubIPAdapter, ...]] = {
    "sd15": (HubIPAdapter(_H94, "models/ip-adapter_sd15.safetensors", "h94 base (SD1.5)", VIT_H),
             HubIPAdapter(_H94, "models/ip-adapter-plus_sd15.safetensors", "h94 plus (SD1.5)", VIT_H),
             HubIPAdapter(_H94, "models/ip-adapter-plus-face_sd15.safetensors", "h94 plus face (SD1.5)", VIT_H)),
    "sdxl": (HubIPAdapter(_H94, "sdxl_models/ip-adapter_sdxl_vit-h.safetensors", "h94 base, ViT-H (SDXL)", VIT_H),
             HubIPAdapter(_H94, "sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors", "h94 plus, ViT-H (SDXL)",
                          VIT_H),
             HubIPAdapter(_H94, "sdxl_models/ip-adapter_sdxl.safetensors", "h94 base, ViT-bigG (SDXL)", VIT_BIGG)),
    "flux1": (HubIPAdapter("XLabs-AI/flux-ip-adapter-v2", "ip_adapter.safetensors", "XLabs v2 (FLUX.1)", CLIP_L),
              HubIPAdapter("XLabs-AI/flux-ip-adapter", "ip_adapter.safetensors", "XLabs v1 (FLUX.1)", CLIP_L)),
}
# what each architecture's adapters take in one call (diffusers: FLUX registers one adapter, whose
# image is one embedding; SD/SDXL several adapters, each with a list of images, and per-block scales),
# and the true CFG scale the tab starts at (XLabs: FLUX adapters bite with true CFG and a negative prompt)
ARCH_RULES: dict[str, dict] = {"flux1": {"adapters": 1, "images": 1, "blocks": False, "true_cfg": 4.0},
                               "sdxl": {"adapters": 4, "images": 8, "blocks": True},
                               "sd15": {"adapters": 4, "images": 8, "blocks": True}}
# known widths: SD cross-attention (to_k_ip input) and number of cross-attention layers
_SD_WIDTHS = {768: "sd15", 2048: "sdxl"}
_SD_COUNTS = {16: "sd15", 70: "sdxl"}


@dataclass(frozen=True, slots=True)
class IPAdapterInfo:
    name: str                   # what a request's ``adapter`` says (folder name, or repo/file)
    source: str                 # a folder, or "hub:repo/file"
    encoder: str                # a folder, or "hub:repo[/subfolder]"
    arch: str | None            # flux1 | sdxl | sd15; None: could not tell from the keys
    width: int | None = None    # the width its image tokens enter the denoiser's attention with
    hub: bool = False
    available: bool = True
    reason: str = ""            # why not usable, and what to do
    label: str = ""

    def describe(self) -> str:
        where = "hub" if self.hub else "local"
        state = "" if self.available and not self.reason else (" — not downloaded" if self.available
                                                               else " — unavailable")
        return f"{self.label or self.name} ({where}){state}"


def arch_from_keys(shapes: dict[str, list[int]]) -> tuple[str | None, int | None]:
    """(architecture, the width image tokens enter with) from an adapter's tensor names and shapes."""
    keys = list(shapes)
    flux = any(k.startswith(("double_blocks.", "ip_adapter_proj_model.")) for k in keys) or \
        any(re.match(r"ip_adapter\.\d+\.to_k_ip\.bias$", k) for k in keys)
    k_ip = sorted(k for k in keys if re.search(r"(to_k_ip|double_stream_k_proj)\.weight$", k))
    width = shapes[k_ip[0]][1] if k_ip and len(shapes[k_ip[0]]) == 2 else None
    if flux:
        return "flux1", width
    if not k_ip:
        return None, None
    return _SD_WIDTHS.get(width) or _SD_COUNTS.get(len(k_ip)), width


def _model_width(model_dir: Path) -> tuple[str, int | None]:
    """("unet" | "transformer" | "", the width its attention takes image tokens at) from its config."""
    for part, key in (("unet", "cross_attention_dim"), ("transformer", "joint_attention_dim")):
        try:
            cfg = json.loads((model_dir / part / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        value = cfg.get(key)
        return part, int(value) if isinstance(value, int) else None
    return "", None


def inspect_local(path: Path) -> IPAdapterInfo:
    """A folder (or a lone file) in models/ip_adapter/: its architecture and encoder."""
    side = {}
    if (path / "studio.json").is_file():
        try:
            side = json.loads((path / "studio.json").read_text(encoding="utf-8"))
        except ValueError:
            side = {}
    folder = path if path.is_dir() else path.parent
    file = path if path.is_file() else next(iter(sorted(path.glob("*.safetensors"))), None)
    encoder = folder / "image_encoder"
    reason, arch, width = "", None, None
    if file is None:
        reason = f"{path.name} has no .safetensors file"
    else:
        try:
            arch, width = arch_from_keys(read_header(file).shapes)
        except (OSError, ValueError) as err:
            reason = f"{file.name} cannot be read ({err})"
        if not reason and width is None and arch is None:
            reason = f"{file.name} has no to_k_ip / double_stream_k_proj keys: not an IP-Adapter"
    if not reason and not (encoder / "config.json").is_file():
        reason = (f"{path.name} has no image_encoder/ (the vision model it was trained with, saved with "
                  f"save_pretrained): put it in {encoder}")
    named = side.get("family")           # an architecture ("flux1", "sdxl", "sd15") or a model family ("flux-schnell")
    if named:
        arch = FAMILIES[named].lora_family if named in FAMILIES else str(named)
    return IPAdapterInfo(path.name, str(path), str(encoder), arch, width, available=not reason, reason=reason,
                         label=side.get("label") or path.name)


def hub_info(adapter: HubIPAdapter, arch: str, *, cached: bool, offline: bool) -> IPAdapterInfo:
    reason = ""
    if not cached:
        reason = (f"{adapter.name} is not in the local Hugging Face cache and the studio is offline: run `hf download "
                  f"{adapter.repo} {adapter.weight}` and get its encoder ({adapter.encoder}) on a machine with "
                  "network (same HF_HOME)") if offline else "not downloaded yet: the first use downloads it"
    return IPAdapterInfo(adapter.name, HUB + adapter.name, HUB + adapter.encoder, arch, hub=True,
                         available=cached or not offline, reason=reason, label=adapter.label)


def split_hub(source: str) -> tuple[str, str]:
    """"hub:owner/repo/sub/file" -> ("owner/repo", "sub/file")."""
    parts = source.removeprefix(HUB).split("/", 2)
    return "/".join(parts[:2]), parts[2] if len(parts) > 2 else ""


def hub_cached(adapter: HubIPAdapter) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(adapter.repo, adapter.weight), str)
    except Exception:  # noqa: BLE001 - a malformed cache means "not cached"
        return False


def check_prompts(entry, prompts) -> None:  # noqa: ANN001 - ModelEntry, tuple[ImagePrompt, ...]
    """What the model's adapters take in one call (``ARCH_RULES``), before anything is written."""
    rules = ARCH_RULES.get(entry.family.lora_family)
    if not prompts or rules is None:
        return
    label = ARCH_LABELS.get(entry.family.lora_family, entry.family.label)
    if len(prompts) > rules["adapters"]:
        raise InvalidRequest("image_prompts", f"{label} takes {rules['adapters']} IP-Adapter at a time, got "
                                              f"{len(prompts)}: use one adapter (its scale sets how strong)")
    for i, prompt in enumerate(prompts):
        if len(prompt.images) > rules["images"]:
            raise InvalidRequest("image_prompts", f"IP-Adapter {i + 1}: {label} adapters take at most "
                                                  f"{rules['images']} reference image(s), got {len(prompt.images)}")
        if prompt.blocks != "all" and not rules["blocks"]:
            raise InvalidRequest("image_prompts", f"IP-Adapter {i + 1}: {label} adapters take one scale for "
                                                  f"every layer; blocks {prompt.blocks!r} is for SD/SDXL")


class IPAdapters:
    """The adapters a model can use and the one a request names (the registry holds one)."""

    def __init__(self, folder: Path, offline: bool, public: bool = False) -> None:
        self._folder, self._offline = folder, offline
        # public mode: an adapter is never named by a path on the server, and messages name no folder
        self._paths_allowed = not public
        self._shown = "models/ip_adapter" if public else str(folder)

    def local(self) -> list[IPAdapterInfo]:
        if not self._folder.is_dir():
            return []
        return [inspect_local(p) for p in sorted(self._folder.iterdir())
                if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".safetensors")]

    def for_model(self, entry) -> list[IPAdapterInfo]:  # noqa: ANN001 - ModelEntry
        """The model's own adapter first, then the local ones that fit it, then the catalog's."""
        own = str(entry.defaults.get("ip_adapter") or "")
        mine = [a for a in self.local() if not self._misfit(a, entry)]
        mine.sort(key=lambda a: (a.name != own, a.name))
        arch = entry.family.lora_family
        return mine + [hub_info(a, arch, cached=hub_cached(a), offline=self._offline)
                       for a in IP_ADAPTERS.get(arch, ())]

    def default_name(self, entry) -> str:  # noqa: ANN001
        """The model's own (studio.json ``ip_adapter``), else the first usable local adapter that fits
        it (what the user put in models/ip_adapter/ works offline), else the catalog's default."""
        own = str(entry.defaults.get("ip_adapter") or "")
        if own:
            return own
        local = [a for a in self.local() if a.available and a.arch and not self._misfit(a, entry)] + \
            [a for a in self.local() if a.available and not a.arch and a.width and not self._misfit(a, entry)]
        if local:
            return local[0].name
        hub = IP_ADAPTERS.get(entry.family.lora_family, ())
        if not hub:
            raise InvalidRequest("image_prompts", f"{entry.label} has no IP-Adapter of its own and the catalog has "
                                                  f"none for {entry.family.label}: pick one from {self._shown}")
        return hub[0].name

    def find(self, name: str, entry) -> IPAdapterInfo:  # noqa: ANN001
        """The adapter ``name`` means ("" = the model's own, else the family's catalog default),
        checked: of the model's family (``InvalidRequest``), usable now (``ModelUnavailable``)."""
        name = name or self.default_name(entry)
        info = self._lookup(name, entry)
        why = self._misfit(info, entry)
        if why:
            raise InvalidRequest("image_prompts", f"IP-Adapter {info.name!r} {why}")
        if not info.available:
            raise ModelUnavailable(f"IP-Adapter {info.name}: {info.reason}")
        return info

    def _lookup(self, name: str, entry) -> IPAdapterInfo:  # noqa: ANN001
        direct = Path(name).expanduser()
        if direct.is_absolute() and self._paths_allowed and direct.exists():
            return inspect_local(direct)
        local = self.local()
        for info in local:
            if name in (info.name, Path(info.name).stem):
                return info
        for arch, adapters in IP_ADAPTERS.items():
            for adapter in adapters:
                if name in (adapter.name, Path(adapter.weight).stem):
                    return hub_info(adapter, arch, cached=hub_cached(adapter), offline=self._offline)
        known = ", ".join(a.name for a in local) or "none"
        raise ModelUnavailable(f"IP-Adapter {name!r} not found in {self._shown} (found: {known}) nor in the "
                               "catalog. Put its folder there (the .safetensors file and image_encoder/).")

    @staticmethod
    def _misfit(info: IPAdapterInfo, entry) -> str:  # noqa: ANN001
        """Why ``info`` cannot serve ``entry`` ("" when it can, or when nothing says it cannot)."""
        arch = entry.family.lora_family
        if info.arch and info.arch != arch:
            return (f"is a {ARCH_LABELS.get(info.arch, info.arch)} adapter; {entry.label} needs a "
                    f"{ARCH_LABELS.get(arch, entry.family.label)} one")
        if info.width and entry.spec.kind == "folder":
            part, width = _model_width(Path(entry.spec.source))
            want_flux = info.arch == "flux1"
            if part and ((part == "transformer") != want_flux or (width and width != info.width)):
                return (f"takes image tokens {info.width} wide; {entry.label}'s {part} attends at width {width}: "
                        f"it is an adapter for another model family")
        return ""


def ip_adapter_table() -> str:
    """The README's table: the catalog's adapters per family, their image encoder, what one call takes."""
    from studio.models.catalog import FAMILIES

    rows = ["| families | IP-Adapter (hub file) | image encoder | one call takes |", "|---|---|---|---|"]
    for arch, adapters in IP_ADAPTERS.items():
        names = ", ".join(f.name for f in FAMILIES.values() if f.lora_family == arch and f.ip_adapter)
        r = ARCH_RULES[arch]
        takes = (f"{r['adapters']} adapter, {r['images']} reference; true CFG {r['true_cfg']:g} by default"
                 if r["adapters"] == 1 else f"up to {r['adapters']} adapters, {r['images']} references each; "
                                             "layer presets")
        for i, a in enumerate(adapters):
            rows.append(f"| {names} | `{a.repo}` `{a.weight}`{' (default)' if i == 0 else ''} | `{a.encoder}` | "
                        f"{takes} |")
    return "\n".join(rows)
