"""The only place that calls ``from_pretrained`` / ``from_single_file`` / quantization.

``Loader.load(entry)`` returns the family's txt2img pipeline on the CPU in the studio's dtype;
the model manager decides where it lives next. Every failure becomes a ``ModelUnavailable``
(or ``UnsupportedOnDevice``) whose message says what to do.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import torch

from studio.errors import ModelUnavailable, StudioError, UnsupportedOnDevice
from studio.models.registry import ModelEntry, safetensors_keys
from studio.requests import Task

log = logging.getLogger(__name__)


def pipeline_class(name: str):
    import diffusers

    return getattr(diffusers, name)


class Loader:
    def __init__(self, *, dtype: torch.dtype, device: str, offline: bool, builtin_dir: Path,
                 quantize: str = "none") -> None:
        self.dtype, self.device, self.offline = dtype, device, offline
        self.builtin_dir = builtin_dir
        self.quantize = quantize
        self._builtin_lock = threading.Lock()
        if quantize == "nf4" and not device.startswith("cuda"):
            raise UnsupportedOnDevice("--quantize nf4 needs a CUDA GPU (bitsandbytes 4-bit through diffusers "
                                      "refuses to load without one); drop --quantize on this machine")

    def load(self, entry: ModelEntry, task: Task = Task.TXT2IMG):
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
        from diffusers import BitsAndBytesConfig as DiffusersBnb
        from diffusers import PipelineQuantizationConfig

        if "Flux" not in cls.__name__:
            raise UnsupportedOnDevice("NF4 is offered for FLUX models only; drop --quantize nf4 for this model")
        cfg = PipelineQuantizationConfig(
            quant_backend="bitsandbytes_4bit",
            quant_kwargs={"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                          "bnb_4bit_compute_dtype": self.dtype},
            components_to_quantize=["transformer", "text_encoder_2"],
        )
        del DiffusersBnb
        return {"quantization_config": cfg}

    def _from_pretrained(self, cls, source: str | Path, *, local: bool):
        log.info("loading %s from %s", cls.__name__, source)
        return cls.from_pretrained(str(source), dtype=self.dtype, local_files_only=local,
                                   **self._quantization(cls))

    def _from_single_file(self, cls, entry: ModelEntry):
        path = Path(entry.spec.source)
        config = entry.spec.note or entry.family.base_repo
        local = self.offline or Path(config).is_dir()
        keys = safetensors_keys(path)
        has_vae = any(k.startswith(("vae.", "first_stage_model.")) for k in keys)
        if entry.family.name.startswith("flux") and not has_vae:
            # a transformer-only FLUX file (the usual download): the rest comes from the base repo
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
