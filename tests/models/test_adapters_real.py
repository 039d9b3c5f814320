"""Per-lease adapters on tiny real pipelines: IP-Adapters cached as components, the shared
transformer rewired for every from_pipe sibling during the lease and exactly restored after it,
LoRA and IP-Adapter together, a failing adapter, model offload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from studio.config import Settings
from studio.errors import ModelUnavailable
from studio.models import report
from studio.models.loader import Loader, split_ip_adapter
from studio.models.manager import LeasePlan, ModelManager
from studio.models.memory import Device
from studio.models.registry import Registry
from studio.models.tiny import tiny_ip_adapter_state
from studio.requests import Task

from models_fakes import PretendAccelerator

FLUX_KW = dict(prompt="a cat", height=64, width=64, num_inference_steps=2, guidance_scale=0.0,
               max_sequence_length=32, output_type="np")
SD_KW = dict(prompt="a cat", num_inference_steps=2, output_type="np")
REFERENCE = Image.new("RGB", (40, 40), (220, 40, 30))
INIT = Image.new("RGB", (64, 64), (30, 120, 200))


@pytest.fixture(scope="module")
def registry(tiny_models_dir):
    return Registry(Settings(models_dir=tiny_models_dir, offline=True, device="cpu"))


@pytest.fixture(scope="module")
def adapters(tiny_models_dir, tmp_path_factory) -> dict[str, Path]:
    from diffusers import DiffusionPipeline

    from studio.models.tiny import save_tiny_ip_adapter

    root = tmp_path_factory.mktemp("ip")
    return {kind: save_tiny_ip_adapter(kind, root / kind, DiffusionPipeline.from_pretrained(
        tiny_models_dir / "checkpoints" / f"tiny-{kind}")) for kind in ("flux", "sd15")}


def manager(tmp_path: Path, device=None, **kw) -> tuple[ModelManager, Loader]:
    loader = Loader(dtype=torch.float32, device="cpu", offline=True, builtin_dir=tmp_path / ".builtin")
    return ModelManager(loader, device=device or Device("cpu"), **kw), loader


def draw(pipe, **kw) -> np.ndarray:
    base = FLUX_KW if "Flux" in type(pipe).__name__ else {**SD_KW, **({} if "Img2Img" in type(pipe).__name__
                                                                    else {"height": 64, "width": 64})}
    return pipe(**base, **kw, generator=torch.Generator("cpu").manual_seed(1)).images


def test_file_layouts_split_the_same(tiny_models_dir):
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(tiny_models_dir / "checkpoints" / "tiny-flux")
    xlabs = split_ip_adapter(tiny_ip_adapter_state("flux", pipe, seed=3))
    diffusers_layout = {f"image_proj.{k}": v for k, v in xlabs["image_proj"].items()} | \
        {f"ip_adapter.{k}": v for k, v in xlabs["ip_adapter"].items()}
    assert sorted(xlabs["ip_adapter"]) == ["0.to_k_ip.bias", "0.to_k_ip.weight", "0.to_v_ip.bias", "0.to_v_ip.weight"]
    again = split_ip_adapter(diffusers_layout)
    assert all(torch.equal(again[g][k], xlabs[g][k]) for g in xlabs for k in xlabs[g])
    with pytest.raises(ModelUnavailable, match="not an IP-Adapter"):
        split_ip_adapter({"lora_unet.down.weight": torch.zeros(1)})


def test_siblings_share_the_rewired_transformer_until_the_lease_ends(registry, adapters, tmp_path,
                                                                      tiny_flux_controlnet):
    m, loader = manager(tmp_path)
    flux = registry.require("tiny-flux")
    controlled = LeasePlan(controlnets=(str(tiny_flux_controlnet),))
    with m.lease(flux) as base:
        plain, procs = draw(base), dict(base.transformer.attn_processors)
    with m.lease(flux, Task.IMG2IMG) as i2i:
        plain_i2i = draw(i2i, image=INIT, strength=0.6)
    with m.lease(flux, Task.TXT2IMG, controlled) as cn:
        plain_cn = draw(cn, control_image=INIT)
    calls = []
    real = loader.load_component
    loader.load_component = lambda kind, path, *a, **k: calls.append(kind) or real(kind, path, *a, **k)
    plan = LeasePlan(ip_adapters=((str(adapters["flux"]), 1.0),))
    for _ in range(2):
        with m.lease(flux, Task.TXT2IMG, plan) as pipe:
            styled = draw(pipe, ip_adapter_image=[REFERENCE])
            with m.lease(flux, Task.IMG2IMG) as sibling:           # the same thread may look in
                assert sibling.transformer is pipe.transformer
                assert sibling.transformer.encoder_hid_proj is not None       # it sees the adapter
                assert pipe.image_encoder is m.component("image_encoder", adapters["flux"] / "image_encoder")
    assert calls == ["ip_adapter", "image_encoder"]                   # the second lease read nothing
    assert {c.kind for c in m.components()} == {"controlnet", "ip_adapter", "image_encoder"}
    assert {r[0]: r[3] for r in report.component_rows(m)} == {"tiny-flux-cn": "CPU", "flux": "CPU",
                                                             "flux/image_encoder": "CPU"}
    assert np.abs(styled - plain).max() > 1e-2
    with m.lease(flux) as base:
        assert getattr(base.transformer, "encoder_hid_proj", None) is None and base.image_encoder is None
        assert all(base.transformer.attn_processors[k] is v for k, v in procs.items())
        assert np.array_equal(draw(base), plain)
    with m.lease(flux, Task.IMG2IMG) as i2i:
        assert np.array_equal(draw(i2i, image=INIT, strength=0.6), plain_i2i)
    with m.lease(flux, Task.TXT2IMG, controlled) as cn:
        assert np.array_equal(draw(cn, control_image=INIT), plain_cn)
    assert m.loads == 1


def test_an_adapter_that_does_not_fit_leaves_the_model_as_it_was(registry, adapters, tmp_path):
    m, _ = manager(tmp_path)
    flux = registry.require("tiny-flux")
    with m.lease(flux) as base:
        plain, procs = draw(base), dict(base.transformer.attn_processors)
    with pytest.raises(ModelUnavailable, match="does not fit"):
        with m.lease(flux, Task.TXT2IMG, LeasePlan(ip_adapters=((str(adapters["sd15"]), 1.0),))):
            pass
    with m.lease(flux) as base:
        assert all(base.transformer.attn_processors[k] is v for k, v in procs.items())
        assert base.image_encoder is None and np.array_equal(draw(base), plain)
    assert not any(c.in_use for c in m.components())


def test_lora_and_ip_adapter_in_one_lease_both_come_off(registry, adapters, tmp_path, tiny_models_dir,
                                                        sd15_lora_named):
    m, _ = manager(tmp_path)
    sd15 = registry.require("tiny-sd15")
    lora = (str(tiny_models_dir / "loras" / f"{sd15_lora_named}.safetensors"), 1.0)
    ip = (str(adapters["sd15"]), 1.0)
    images = {}
    for name, plan in (("plain", None), ("lora", LeasePlan(loras=(lora,))), ("ip", LeasePlan(ip_adapters=(ip,))),
                       ("both", LeasePlan(loras=(lora,), ip_adapters=(ip,))), ("after", None)):
        with m.lease(sd15, Task.TXT2IMG, plan) as pipe:
            images[name] = draw(pipe, **({"ip_adapter_image": [REFERENCE]} if plan and plan.ip_adapters else {}))
    assert np.array_equal(images["after"], images["plain"])
    distinct = [images[k].tobytes() for k in ("plain", "lora", "ip", "both")]
    assert len(set(distinct)) == 4


def test_model_offload_hooks_take_the_image_encoder_and_let_go_after(registry, adapters, tmp_path):
    """The CPU as a pretend accelerator: the real diffusers offload calls with an IP-Adapter."""
    sd15 = registry.require("tiny-sd15")
    plan = LeasePlan(ip_adapters=((str(adapters["sd15"]), 1.0),))
    on_cpu, _ = manager(tmp_path)
    with on_cpu.lease(sd15, Task.TXT2IMG, plan) as pipe:
        expected = draw(pipe, ip_adapter_image=[REFERENCE])
    with on_cpu.lease(sd15) as pipe:
        plain = draw(pipe)
    m, _ = manager(tmp_path, device=PretendAccelerator(10 ** 12), placement="model_offload", gpu_reserve=0)
    with m.lease(sd15, Task.TXT2IMG, plan) as pipe:
        assert m.loaded()[0].placement == "model_offload"
        assert hasattr(pipe.image_encoder, "_hf_hook")              # in the offload sequence
        got = draw(pipe, ip_adapter_image=[REFERENCE])
        encoder = pipe.image_encoder
    assert np.abs(got - expected).max() < 1e-5
    assert not hasattr(encoder, "_hf_hook")
    with m.lease(sd15) as pipe:
        assert pipe.image_encoder is None and np.abs(draw(pipe) - plain).max() < 1e-5
