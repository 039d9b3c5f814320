"""ModelManager on tiny real pipelines: shared weights, real release, ControlNet entries, NF4 refusal."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
import torch

from studio.config import Settings
from studio.errors import ModelUnavailable, UnsupportedOnDevice
from studio.models.loader import Loader, check_quantize, nf4_config
from studio.models.manager import CPU, DISK, LeasePlan, ModelManager
from studio.models.memory import Device, component_bytes, pipeline_bytes, tensor_ptrs
from studio.models.registry import Registry
from studio.requests import Task

from models_fakes import PretendAccelerator


@pytest.fixture(scope="module")
def registry(tiny_models_dir):
    return Registry(Settings(models_dir=tiny_models_dir, offline=True, device="cpu"))


def make_manager(tmp_path: Path, **kw) -> tuple[ModelManager, Loader]:
    loader = Loader(dtype=torch.float32, device="cpu", offline=True, builtin_dir=tmp_path / ".builtin")
    return ModelManager(loader, device=Device("cpu"), **kw), loader


def test_task_pipelines_share_the_very_same_tensors(registry, tmp_path, tiny_flux_controlnet):
    m, _ = make_manager(tmp_path)
    flux = registry.require("tiny-flux")
    plan = LeasePlan(controlnets=(str(tiny_flux_controlnet),))
    with m.lease(flux) as base:
        ptrs = tensor_ptrs(base)
        size = pipeline_bytes(base)
    for task, controlled in ((Task.IMG2IMG, False), (Task.INPAINT, False), (Task.TXT2IMG, True),
                             (Task.IMG2IMG, True), (Task.INPAINT, True)):
        with m.lease(flux, task, plan if controlled else None) as pipe:
            assert type(pipe).__name__ == flux.family.pipeline_class(task, controlled)
            assert ptrs <= tensor_ptrs(pipe)                       # every base tensor, same data_ptr
            if controlled:
                assert pipe.controlnet is m.component("controlnet", tiny_flux_controlnet)
    assert m.loads == 1
    [row] = m.loaded()
    assert row.bytes == size and set(row.tasks) == {"img2img", "inpaint", "txt2img+controlnet",
                                                    "img2img+controlnet", "inpaint+controlnet"}


def test_sd15_and_sdxl_derive_too(registry, tmp_path):
    m, _ = make_manager(tmp_path)
    for model_id in ("tiny-sd15", "tiny-sdxl"):
        entry = registry.require(model_id)
        with m.lease(entry) as base:
            ptrs = tensor_ptrs(base)
        with m.lease(entry, Task.INPAINT) as pipe:
            assert ptrs <= tensor_ptrs(pipe)
    assert [r.id for r in m.loaded()] == ["tiny-sd15", "tiny-sdxl"]


def test_evicted_model_tensors_are_really_released(registry, tmp_path):
    m, _ = make_manager(tmp_path, cpu_budget=1)            # any second model evicts the first
    flux = registry.require("tiny-flux")
    with m.lease(flux) as base:
        ref_module = weakref.ref(base.transformer)
        ref_param = weakref.ref(next(base.transformer.parameters()))
    with m.lease(flux, Task.IMG2IMG):
        pass
    del base
    with m.lease(registry.require("tiny-sd15")):
        pass
    gc.collect()
    assert m.where("tiny-flux") == DISK
    assert ref_module() is None and ref_param() is None


def test_generation_through_a_lease_is_the_raw_pipeline(registry, tmp_path):
    m, _ = make_manager(tmp_path)
    flux = registry.require("tiny-flux")
    kw = dict(prompt="a cat", height=64, width=64, num_inference_steps=2, guidance_scale=0.0,
              max_sequence_length=32, output_type="np")
    with m.lease(flux) as pipe:
        a = pipe(**kw, generator=torch.Generator("cpu").manual_seed(1)).images
    from diffusers import FluxPipeline

    raw = FluxPipeline.from_pretrained(flux.spec.source)
    raw.set_progress_bar_config(disable=True)
    b = raw(**kw, generator=torch.Generator("cpu").manual_seed(1)).images
    assert abs(a - b).max() < 1e-5
    assert m.where("tiny-flux") == CPU


def test_estimate_is_close_to_measured(registry, tmp_path):
    m, loader = make_manager(tmp_path)
    flux = registry.require("tiny-flux")
    estimate = loader.estimate_bytes(flux)
    with m.lease(flux):
        pass
    measured = m.loaded()[0].bytes
    assert 0.8 * measured <= estimate <= 1.3 * measured


def test_missing_component_is_a_clear_error(registry, tmp_path):
    m, _ = make_manager(tmp_path)
    with pytest.raises(ModelUnavailable, match="does not exist"):
        m.component("controlnet", tmp_path / "nope")
    assert m.components() == []


def test_nf4_is_refused_on_cpu_with_a_clear_message(tmp_path):
    with pytest.raises(UnsupportedOnDevice, match="CUDA"):
        Loader(dtype=torch.float32, device="cpu", offline=True, builtin_dir=tmp_path, quantize="nf4")
    with pytest.raises(UnsupportedOnDevice, match="drop --quantize nf4"):
        check_quantize("nf4", "mps")
    check_quantize("nf4", "cuda")                               # allowed where it can run
    check_quantize("none", "cpu")


def test_nf4_configuration_targets_flux_transformer_and_t5():
    cfg = nf4_config(torch.bfloat16)
    assert cfg.quant_backend == "bitsandbytes_4bit"
    assert set(cfg.components_to_quantize) == {"transformer", "text_encoder_2"}
    assert cfg.quant_kwargs["bnb_4bit_quant_type"] == "nf4"
    assert cfg.quant_kwargs["bnb_4bit_compute_dtype"] is torch.bfloat16


def test_offline_download_says_so(registry, tmp_path):
    _, loader = make_manager(tmp_path)
    hub = next(e for e in registry.entries() if e.spec.kind == "hub")
    with pytest.raises(ModelUnavailable, match="offline"):
        loader.download(hub)


def test_studio_wiring_generates_with_the_manager(make_studio):
    from studio.requests import GenerationRequest

    studio = make_studio()
    req = GenerationRequest(prompt="a cat", model_id="tiny-flux", steps=2, seed=3)
    first = studio.generate(req)
    second = studio.generate(req)
    assert studio.models.loads == 1
    assert first.images[0].tobytes() == second.images[0].tobytes()


@pytest.fixture(scope="module")
def tiny_sd15_lora(tiny_models_dir, tmp_path_factory) -> Path:
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models_dir / "checkpoints" / "tiny-sd15")
    torch.manual_seed(5)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                     target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    folder = tmp_path_factory.mktemp("lora")
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(pipe.unet),
                                              weight_name="tiny_style.safetensors")
    return folder / "tiny_style.safetensors"


def test_lora_plan_applies_per_lease_and_the_base_comes_back(registry, tmp_path, tiny_sd15_lora):
    m, _ = make_manager(tmp_path)
    sd15 = registry.require("tiny-sd15")
    kw = dict(prompt="a cat", height=64, width=64, num_inference_steps=2, output_type="np")

    def draw(plan=None):
        with m.lease(sd15, Task.TXT2IMG, plan) as pipe:
            return pipe(**kw, generator=torch.Generator("cpu").manual_seed(1)).images

    base = draw()
    styled = draw(LeasePlan(loras=((str(tiny_sd15_lora), 1.0),)))
    assert abs(styled - base).max() > 1e-3                       # the LoRA changed the image
    assert abs(draw() - base).max() < 1e-6                       # next lease without it: the base again
    assert abs(draw(LeasePlan(loras=((str(tiny_sd15_lora), 0.0),))) - base).max() < 1e-5
    assert abs(draw(LeasePlan(loras=((str(tiny_sd15_lora), 1.0),))) - styled).max() < 1e-6
    assert m.loads == 1
    assert m.components() == []                 # held once: inside the model, no cached copy beside it
    assert m.lora_loads == 1                    # the weight changed three times; the file was read once
    [row] = m.lora_rows()
    assert row.bytes > 0 and row.weight == 1.0 and not row.fused


@pytest.mark.parametrize("placement", ["model_offload", "group_offload", "sequential_offload"])
def test_offload_placements_drive_the_real_diffusers_apis(registry, tmp_path, placement):
    """No GPU here: the 'accelerator' is the CPU itself, which exercises the diffusers calls and
    the undo path (the image must not change, the base must come back or be reloaded)."""
    loader = Loader(dtype=torch.float32, device="cpu", offline=True, builtin_dir=tmp_path)
    flux = registry.require("tiny-flux")
    kw = dict(prompt="a cat", height=64, width=64, num_inference_steps=2, guidance_scale=0.0,
              max_sequence_length=32, output_type="np")
    pipe = loader.load(flux)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(**kw, generator=torch.Generator("cpu").manual_seed(1)).images
    loader.place(pipe, placement)
    got = pipe(**kw, generator=torch.Generator("cpu").manual_seed(1)).images
    assert abs(got - expected).max() < 1e-5
    undone = loader.unplace(pipe, placement)
    assert undone is (placement == "model_offload")
    if undone:
        assert not any(hasattr(c, "_hf_hook") for c in pipe.components.values())


def test_manager_places_real_pipelines_by_budget_and_images_do_not_change(registry, tmp_path):
    flux = registry.require("tiny-flux")
    kw = dict(prompt="a cat", height=64, width=64, num_inference_steps=2, guidance_scale=0.0,
              max_sequence_length=32, output_type="np")
    loader = Loader(dtype=torch.float32, device="cpu", offline=True, builtin_dir=tmp_path)
    probe = ModelManager(loader, device=Device("cpu"))
    with probe.lease(flux) as pipe:
        size = pipeline_bytes(pipe)
        expected = pipe(**kw, generator=torch.Generator("cpu").manual_seed(1)).images
    largest = max(component_bytes(pipe).values())
    for free, placement in ((size + 10, "gpu"), (size - 1, "model_offload"), (largest - 1, "group_offload")):
        m = ModelManager(loader, device=PretendAccelerator(free), gpu_reserve=0)
        for task in (Task.TXT2IMG, Task.IMG2IMG):
            with m.lease(flux, task) as pipe:
                if task is Task.TXT2IMG:
                    got = pipe(**kw, generator=torch.Generator("cpu").manual_seed(1)).images
        assert m.loaded()[0].placement == placement
        assert abs(got - expected).max() < 1e-5, placement
