"""The only place that calls ``from_pretrained`` / ``from_single_file`` / quantization.

``Loader.load(entry)`` returns the family's txt2img pipeline on the CPU in the studio's dtype;
the model manager decides where it lives next and asks the loader to do it (``place``,
``unplace``), to derive task pipelines (``derive``: ``from_pipe``, shared weights) and to read
components: ControlNets, LoRAs, IP-Adapters, image encoders, preprocessors (``load_component``;
``place_component`` / ``unplace_component`` move them between the tiers). Every failure becomes a
``ModelUnavailable`` (or ``UnsupportedOnDevice``) whose message says what to do.

Placements (``PLACEMENTS``, what each does): ``studio.models.placement``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from studio.errors import ModelUnavailable, StudioError, UnsupportedOnDevice
from studio.models.header import read_header
from studio.models.placement import PLACEMENTS, streamed
from studio.models.registry import ModelEntry
from studio.requests import Task

log = logging.getLogger(__name__)


COMPONENT_KINDS = ("controlnet", "lora", "ip_adapter", "image_encoder", "preprocessor")


def nf4_config(dtype: torch.dtype):
    """NF4 for the FLUX transformer and T5 (bitsandbytes 4-bit through diffusers; CUDA only)."""
    from diffusers import PipelineQuantizationConfig

    return PipelineQuantizationConfig(
        quant_backend="bitsandbytes_4bit",
        quant_kwargs={"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": dtype},
        components_to_quantize=["transformer", "text_encoder_2"],
    )


def check_quantize(quantize: str, device: str) -> None:
    if quantize == "nf4" and not device.startswith("cuda"):
        raise UnsupportedOnDevice(f"--quantize nf4 needs a CUDA GPU, and this studio runs on {device!r} "
                                  "(bitsandbytes 4-bit through diffusers refuses to load without one); "
                                  "drop --quantize nf4, or use --placement model_offload on a small GPU")


def compile_denoiser(pipe, cache_dir: Path) -> bool:
    """``--compile``: regional compilation of the denoiser's repeated blocks (diffusers'
    ``compile_repeated_blocks``: FLUX's double/single blocks, a UNet's transformer blocks), the
    whole denoiser where none are declared (SD3). Compiling happens lazily, on the first call;
    inductor's cache in ``cache_dir`` lets a restart reuse it. Marks the pipeline
    (``studio_compiled``) for the Models tab."""
    import os

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(cache_dir).resolve())   # read at each compile
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    denoiser = getattr(pipe, "transformer", None) or getattr(pipe, "unet", None)
    if denoiser is None:
        return False
    if getattr(denoiser, "_repeated_blocks", None):
        denoiser.compile_repeated_blocks(fullgraph=True)
    else:
        denoiser.compile(fullgraph=True)
    pipe.studio_compiled = True
    return True


def pipeline_class(name: str):
    import diffusers

    return getattr(diffusers, name)


class Loader:
    def __init__(self, *, dtype: torch.dtype, device: str, offline: bool, builtin_dir: Path,
                 quantize: str = "none", compile_dir: Path | None = None) -> None:
        self.dtype, self.device, self.offline = dtype, device, offline
        self.builtin_dir = builtin_dir
        self.quantize = quantize
        self.compile_dir = compile_dir            # --compile: inductor's cache lives here (reused across starts)
        self._builtin_lock = threading.Lock()
        check_quantize(quantize, device)

    def load(self, entry: ModelEntry, task: Task | None = None):
        """The model as its family's base pipeline (txt2img; inpaint for an inpaint-only family)."""
        pipe = self._load(entry, task or entry.family.base_task)
        if self.compile_dir is not None:
            compile_denoiser(pipe, self.compile_dir)
        return pipe

    def _load(self, entry: ModelEntry, task: Task):
        cls = pipeline_class(entry.family.pipeline_class(task))
        kind = entry.spec.kind
        try:
            if kind == "builtin":
                return self._from_pretrained(cls, self._builtin_folder(entry), local=True)
            if kind == "folder":
                return self._from_pretrained(cls, entry.spec.source, local=True)
            if kind == "hub":
                return self._from_pretrained(cls, entry.spec.source, local=self.offline)
            if kind == "single_file":
                return self._from_single_file(cls, entry)
        except StudioError:
            raise
        except torch.OutOfMemoryError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError, ImportError) as err:
            raise ModelUnavailable(_explain(entry, err, self.offline)) from err
        raise ModelUnavailable(f"{entry.label}: unknown source kind {kind!r}")

    # -- sources ---------------------------------------------------------------------------
    def _quantization(self, cls):
        if self.quantize != "nf4":
            return {}
        if "Flux" not in cls.__name__:
            raise UnsupportedOnDevice("NF4 is offered for FLUX models only; drop --quantize nf4 for this model")
        return {"quantization_config": nf4_config(self.dtype)}

    def _from_pretrained(self, cls, source: str | Path, *, local: bool):
        log.info("loading %s from %s", cls.__name__, source)
        return cls.from_pretrained(str(source), dtype=self.dtype, local_files_only=local,
                                   **self._quantization(cls))

    def _from_single_file(self, cls, entry: ModelEntry):
        path = Path(entry.spec.source)
        config = entry.spec.config or entry.family.base_repo
        local = self.offline or Path(config).is_dir()
        keys = set(read_header(path).shapes)
        has_vae = any(k.startswith(("vae.", "first_stage_model.")) for k in keys)
        if entry.family.transformer_files and not has_vae:
            # a transformer-only file (the usual FLUX download): the rest comes from the base repo
            from diffusers import FluxTransformer2DModel

            transformer = FluxTransformer2DModel.from_single_file(
                str(path), config=config, subfolder="transformer", dtype=self.dtype, local_files_only=local)
            return cls.from_pretrained(config, transformer=transformer, dtype=self.dtype,
                                       local_files_only=local)
        return cls.from_single_file(str(path), config=config, dtype=self.dtype, local_files_only=local)

    def _builtin_folder(self, entry: ModelEntry) -> Path:
        """Built-in models are built from configs once, saved, then loaded like any folder."""
        folder = self.builtin_dir / entry.id
        with self._builtin_lock:
            if not (folder / "model_index.json").is_file():
                from studio.models.tiny import build_tiny_flux_pipeline

                tmp = folder.with_name(folder.name + ".partial")
                build_tiny_flux_pipeline(seed=0, max_length=int(entry.default("max_sequence_length"))) \
                    .save_pretrained(tmp, safe_serialization=True)
                (tmp / "studio.json").write_text(json.dumps({"family": entry.family.name}), encoding="utf-8")
                if folder.exists():
                    import shutil

                    shutil.rmtree(folder)
                tmp.rename(folder)
        return folder


    # -- what the manager asks besides load -----------------------------------------------------
    def estimate_bytes(self, entry: ModelEntry) -> int:
        """Bytes the weights will take once loaded, from the files (0 when unknown: hub, not cached)."""
        kind = entry.spec.kind
        if kind in ("folder", "single_file"):
            path = Path(entry.spec.source)
        elif kind == "builtin":
            path = self.builtin_dir / entry.id
        else:
            path = _hub_snapshot(entry.spec.source)
        if path is None or not path.exists():
            return 0
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.suffix in (".safetensors", ".bin")]
        total = sum(p.stat().st_size for p in files if p.is_file())
        if self.quantize == "nf4":
            total //= 3   # transformer + T5 (most of a FLUX model) at ~4.5 bits instead of 16
        return total

    def place(self, pipe, placement: str) -> None:
        """Put a CPU pipeline where ``placement`` says (see the module doc)."""
        if placement in ("cpu", "none"):
            return
        device = torch.device(self.device)
        if placement == "gpu":
            pipe.to(device)
        elif placement == "model_offload":
            pipe.enable_model_cpu_offload(device=device)
        elif placement == "sequential_offload":
            # Layer by layer. Not accelerate's enable_sequential_cpu_offload: with accelerate 1.15 and
            # transformers 5 its hooks fail on the CLIP text encoder (TypeError in
            # set_module_tensor_to_device). diffusers' leaf-level group offload does the same job.
            pipe.enable_group_offload(onload_device=device, offload_device=torch.device("cpu"),
                                      offload_type="leaf_level", **streamed(device))
        elif placement == "group_offload":
            pipe.enable_group_offload(onload_device=device, offload_device=torch.device("cpu"),
                                      offload_type="block_level", num_blocks_per_group=1, **streamed(device))
        else:
            raise ValueError(f"unknown placement {placement!r}; one of {PLACEMENTS}")

    def unplace(self, pipe, placement: str) -> bool:
        """Bring a placed pipeline back to the CPU. False when that cannot be undone (group offload,
        4-bit weights): the manager then drops the model instead of demoting it."""
        if placement in ("cpu", "none"):
            return True
        if placement in ("group_offload", "sequential_offload") or self.quantize == "nf4":
            return False       # diffusers has no "disable group offload"; a reload is the honest undo
        if placement == "model_offload":
            pipe.remove_all_hooks()
        pipe.to("cpu")
        return True

    def derive(self, base, entry: ModelEntry, task: Task, controlled: bool = False, *, union: bool = False,
               **components):
        """A task pipeline from the base with ``from_pipe``: same tensors, nothing new allocated
        (``union``: the family's union-ControlNet pipeline).

        The base's dtype is passed on purpose: ``from_pipe`` otherwise casts to float32, which on a
        bfloat16 model would convert the shared weights in place and double their memory.
        """
        cls = pipeline_class(entry.family.pipe(task, controlled, union).cls)
        pipe = cls.from_pipe(base, dtype=base.dtype, **components)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def load_component(self, kind: str, path: str | Path, controlnet_class: str = "", *,
                       build: Callable[[], Any] | None = None):
        """A component, on the CPU in the studio's dtype: a ControlNet (model), a LoRA (state dict),
        an IP-Adapter (state dict split into ``image_proj`` / ``ip_adapter``, diffusers' h94 layout
        or XLabs' FLUX layout), an image encoder (a transformers vision model from its folder), or a
        preprocessor (whatever ``build()`` returns; ``path`` is then only its name)."""
        if kind not in COMPONENT_KINDS:
            raise ValueError(f"unknown component kind {kind!r}; one of {COMPONENT_KINDS}")
        if kind == "preprocessor":
            if build is None:
                raise ValueError("a preprocessor component needs build=: a callable that makes it")
            try:
                return build()
            except StudioError:
                raise
            except (OSError, ValueError, KeyError, RuntimeError, ImportError) as err:
                raise ModelUnavailable(f"preprocessor {path} could not be built: {err}") from err
        if kind == "controlnet" and is_repo_id(path):
            return self._hub_controlnet(str(path), controlnet_class)
        if kind in ("ip_adapter", "image_encoder") and str(path).startswith("hub:"):
            return self._hub_ip_part(kind, str(path))
        path = Path(path)
        if not path.exists():
            raise ModelUnavailable(f"{kind} {path} does not exist; put it in the models folder ({kind}/)")
        try:
            if kind == "controlnet":
                return self._controlnet(path, controlnet_class)
            if kind == "image_encoder":
                return self._image_encoder(path)
            from safetensors.torch import load_file

            file = path if path.is_file() else next(iter(sorted(path.glob("*.safetensors"))), None)
            if file is None:
                raise ModelUnavailable(f"{kind} {path}: no .safetensors file in it")
            state = {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in load_file(str(file)).items()}
            return split_ip_adapter(state, file) if kind == "ip_adapter" else state
        except StudioError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise ModelUnavailable(f"{kind} {path} could not be loaded: {err}") from err

    def _controlnet(self, path: Path, controlnet_class: str):
        import diffusers

        name = controlnet_class or "ControlNetModel"
        if path.is_dir() and (path / "config.json").is_file():
            cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
            name = cfg.get("_class_name", name)
        cls = getattr(diffusers, name)
        if path.is_file():
            return cls.from_single_file(str(path), dtype=self.dtype, local_files_only=True)
        return cls.from_pretrained(str(path), dtype=self.dtype, local_files_only=True).eval()

    def _hub_controlnet(self, repo: str, controlnet_class: str):
        """A catalog ControlNet by hub id: from the cache, or downloaded now (online); its config
        names the class (xinsir's union net: ControlNetUnionModel)."""
        import diffusers
        from huggingface_hub import hf_hub_download

        try:
            config = json.loads(Path(hf_hub_download(repo, "config.json", local_files_only=self.offline))
                                .read_text(encoding="utf-8"))
            cls = getattr(diffusers, config.get("_class_name") or controlnet_class or "ControlNetModel")
            return cls.from_pretrained(repo, dtype=self.dtype, local_files_only=self.offline).eval()
        except StudioError:
            raise
        except Exception as err:  # noqa: BLE001 - hub errors of every kind: say what to do
            raise ModelUnavailable(f"ControlNet {repo} could not be loaded ({type(err).__name__}: {err}). On a "
                                   f"machine with network run `hf download {repo}` (same HF_HOME)") from err

    def _hub_ip_part(self, kind: str, source: str):
        """A catalog IP-Adapter file ("hub:repo/file") or its image encoder ("hub:repo[/subfolder]"),
        from the cache or downloaded now (online)."""
        from huggingface_hub import hf_hub_download
        from safetensors.torch import load_file

        from studio.models.ip_adapters import split_hub

        repo, rest = split_hub(source)
        try:
            if kind == "image_encoder":
                import transformers

                return transformers.CLIPVisionModelWithProjection.from_pretrained(
                    repo, subfolder=rest or None, dtype=self.dtype, local_files_only=self.offline).eval()
            file = Path(hf_hub_download(repo, rest, local_files_only=self.offline))
            state = {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in load_file(str(file)).items()}
            return split_ip_adapter(state, file)
        except StudioError:
            raise
        except Exception as err:  # noqa: BLE001 - hub errors of every kind: say what to do
            raise ModelUnavailable(f"{kind} {source[4:]} could not be loaded ({type(err).__name__}: {err}). On a "
                                   f"machine with network run `hf download {repo}` (same HF_HOME).") from err

    def _image_encoder(self, path: Path):
        """The vision model its config names (CLIPVisionModelWithProjection for h94 and XLabs)."""
        import transformers

        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
        name = (cfg.get("architectures") or ["CLIPVisionModelWithProjection"])[0]
        cls = getattr(transformers, name)
        return cls.from_pretrained(str(path), dtype=self.dtype, local_files_only=True).eval()

    def place_component(self, obj):
        """A cached component onto the accelerator; returns it (a state dict comes back as a new dict)."""
        return tensors_to(obj, torch.device(self.device))

    def unplace_component(self, obj):
        """A cached component back to the CPU; returns it."""
        return tensors_to(obj, torch.device("cpu"))

    def download(self, entry: ModelEntry, tqdm_class=None) -> Path:
        """Fetch a hub model into the local cache (huggingface_hub ``snapshot_download``)."""
        if entry.spec.kind != "hub":
            raise ModelUnavailable(f"{entry.label} is a local model ({entry.where}); nothing to download")
        if self.offline:
            raise ModelUnavailable(f"the studio is offline (--offline / HF_HUB_OFFLINE): {entry.spec.source} cannot be "
                                   f"downloaded now. On a machine with network run `hf download {entry.spec.source}`.")
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(entry.spec.source, tqdm_class=tqdm_class,
                                          allow_patterns=["*.json", "*.txt", "*.model", "*.safetensors"],
                                          ignore_patterns=["*.fp16.*", "*/diffusion_pytorch_model-*.bin"]))
        except Exception as err:  # noqa: BLE001 - any hub failure: say what to do
            raise ModelUnavailable(_explain(entry, err, False)) from err


def is_repo_id(path) -> bool:  # noqa: ANN001 - str or Path
    """``owner/name`` that is not a local path: a hub repo id."""
    text = str(path)
    return text.count("/") == 1 and not text.startswith((".", "/", "~")) and not Path(text).exists()


def _hub_snapshot(repo: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo, "model_index.json")
        return Path(found).parent if isinstance(found, str) else None
    except Exception:  # noqa: BLE001 - not cached
        return None


def _explain(entry: ModelEntry, err: Exception, offline: bool) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    where = entry.where or entry.spec.source
    if entry.spec.kind == "hub":
        how = (f"it is not fully in the local hub cache and the studio is offline: run `hf download {entry.spec.source}`"
               " on a machine with network (same HF_HOME)") if offline else \
              (f"download failed: check the network, and for gated models accept the licence on the hub and set HF_TOKEN"
               f" ({entry.spec.note})" if entry.spec.gated else "download failed: check the network and disk space")
        return f"{entry.label} could not be loaded from {where}: {how}. Cause: {text}"
    return f"{entry.label} could not be loaded from {where}: {text}"


# IP-Adapter files: diffusers' (h94) prefixes and XLabs' FLUX ones, renamed as diffusers does.
_IMAGE_PROJ = ("image_proj", "ip_adapter_proj_model")
_IP_LAYERS = ("ip_adapter", "double_blocks")


def split_ip_adapter(flat: dict, file: Path | None = None) -> dict[str, dict]:
    """A flat IP-Adapter state dict -> ``{"image_proj": {...}, "ip_adapter": {...}}``, the form
    ``load_ip_adapter`` takes (what it does itself when it reads a file)."""
    out: dict[str, dict] = {"image_proj": {}, "ip_adapter": {}}
    for key, tensor in flat.items():
        head, _, rest = key.partition(".")
        if head in _IMAGE_PROJ:
            out["image_proj"][rest] = tensor
        elif head in _IP_LAYERS:
            rest = rest.replace("ip_adapter_double_stream_k_proj", "to_k_ip") \
                .replace("ip_adapter_double_stream_v_proj", "to_v_ip").replace("processor.", "")
            out["ip_adapter"][rest] = tensor
    if not out["image_proj"] or not out["ip_adapter"]:
        raise ModelUnavailable(f"{file.name if file else 'IP-Adapter'} has no image_proj.* and ip_adapter.* keys: "
                               "not an IP-Adapter in the diffusers (h94) or XLabs layout")
    return out


def tensors_to(obj, device: torch.device):
    """A module (in place), a (nested) dict of tensors (a new dict), or anything with ``.to``."""
    if isinstance(obj, dict):
        return {k: tensors_to(v, device) for k, v in obj.items()}
    if hasattr(obj, "to"):              # tensors, modules, detectors that carry their models
        return obj.to(device)
    return obj
