"""LoRAs through Studio.generate and the model manager on tiny real pipelines: every layout changes
the image, weight 0 is the base, a weight change loads nothing, fusing is exact to undo, idle
LoRAs leave the model and its measured bytes, bad input writes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from studio import forms
from studio.errors import InvalidRequest, ModelUnavailable
from studio.requests import GenerationRequest, LoraSpec
from tests.conftest import png_files


def draw(studio, model, *loras, prompt="a red circle", **kw):
    result = studio.generate(GenerationRequest(prompt, model_id=model, seed=3, steps=2, loras=tuple(loras), **kw))
    return np.asarray(result.images[0], dtype=np.int16)


@pytest.mark.parametrize("model, lora", [
    ("tiny-flux", "flux-style"), ("tiny-flux", "kohya/flux-kohya"), ("tiny-sdxl", "sdxl-style"),
    ("tiny-sdxl", "kohya/sdxl-kohya"), ("tiny-sd15", "sd15-style"), ("tiny-sd15", "kohya/sd15-kohya")])
def test_every_layout_changes_the_image_and_weight_zero_is_the_base(lora_studio, model, lora):
    base = draw(lora_studio, model)
    styled = draw(lora_studio, model, LoraSpec(lora, 1.0))
    assert np.abs(styled - base).mean() > 0.5
    assert np.array_equal(draw(lora_studio, model, LoraSpec(lora, 0.0)), base)
    assert np.array_equal(draw(lora_studio, model), base)                # the next request without it
    assert lora_studio.models.lora_loads == 1


def test_a_weight_change_or_a_switch_loads_nothing_and_sets_the_mix_once(lora_studio):
    studio = lora_studio
    base = draw(studio, "tiny-flux")
    full = draw(studio, "tiny-flux", LoraSpec("flux-style", 1.0))
    pipe = studio.models._slots["tiny-flux"].base
    calls = []
    for name in ("set_adapters", "load_lora_weights", "enable_lora", "disable_lora"):
        real = getattr(pipe, name)
        setattr(pipe, name, lambda *a, _n=name, _r=real, **k: calls.append(_n) or _r(*a, **k))
    half = draw(studio, "tiny-flux", LoraSpec("flux-style", 0.5))
    assert calls == ["set_adapters"]                                     # a weight change: set_adapters only
    assert np.array_equal(draw(studio, "tiny-flux", LoraSpec("flux-style", 0.5)), half)
    assert calls == ["set_adapters"]                                     # the same mix again: nothing at all
    assert np.array_equal(draw(studio, "tiny-flux"), base) and calls[-1] == "disable_lora"
    assert np.array_equal(draw(studio, "tiny-flux", LoraSpec("flux-style", 1.0)), full)
    assert calls[-2:] == ["enable_lora", "set_adapters"]
    assert studio.models.lora_loads == 1 and "load_lora_weights" not in calls
    assert 0 < np.abs(half - base).mean() < np.abs(full - base).mean()


def test_two_loras_mix_and_the_prompt_tag_is_the_same_as_the_list(lora_studio):
    one = draw(lora_studio, "tiny-flux", LoraSpec("flux-style", 1.0))
    two = draw(lora_studio, "tiny-flux", LoraSpec("flux-second", 1.0))
    both = draw(lora_studio, "tiny-flux", LoraSpec("flux-style", 1.0), LoraSpec("flux-second", 1.0))
    assert np.abs(both - one).mean() > 0.5 and np.abs(both - two).mean() > 0.5
    tagged = draw(lora_studio, "tiny-flux", LoraSpec("flux-style", 1.0), prompt="a red circle <lora:flux-second:1>")
    assert np.array_equal(tagged, both)
    assert lora_studio.models.lora_loads == 2


def test_a_lora_of_another_family_is_refused_before_anything_loads(lora_studio):
    studio = lora_studio
    draw(studio, "tiny-flux")
    loads = studio.models.loads
    with pytest.raises(InvalidRequest, match="loras: LoRA 'sdxl-style' cannot be used with .*: a Stable Diffusion XL "
                                             "LoRA \\(told from its keys\\); FLUX.1 schnell models cannot use it"):
        draw(studio, "tiny-flux", LoraSpec("sdxl-style", 1.0))
    assert studio.models.loads == loads and studio.models.lora_loads == 0
    assert len(png_files(studio.sink.outputs_dir)) == 1 and studio.sink.store.count() == 1


@pytest.fixture
def bad_studio(lora_models, tmp_path):
    """A studio whose LoRA folder holds a good FLUX LoRA and bad files beside it."""
    from studio.config import Settings
    from studio.wiring import build_studio

    root = tmp_path / "models"
    (root / "loras").mkdir(parents=True)
    (root / "checkpoints").symlink_to(lora_models / "checkpoints")
    good = lora_models / "loras" / "flux-style.safetensors"
    shutil.copy(good, root / "loras" / "good.safetensors")
    (root / "loras" / "cut.safetensors").write_bytes(good.read_bytes()[:-64])
    (root / "loras" / "old.ckpt").write_bytes(b"PK\x03\x04 pickles")
    return build_studio(Settings(models_dir=root, outputs_dir=tmp_path / "out", offline=True, device="cpu"))


@pytest.mark.parametrize("prompt, loras, error, message", [
    ("a cat", "nope:1", ModelUnavailable, "LoRA 'nope' not found in .* \\(found: cut, good, old.ckpt\\)"),
    ("a cat <lora:nope:0.5>", "", ModelUnavailable, "LoRA 'nope' not found"),
    ("a cat", "good:3", InvalidRequest, "loras: weight of 'good' must be within -2..2, got 3"),
    ("a cat", "good:nan", InvalidRequest, "loras: must be a finite number, got 'nan'"),
    ("a cat <lora:good:nan>", "", InvalidRequest, "prompt: <lora:good:nan>: the weight must be a finite number"),
    ("a cat", "cut:1", InvalidRequest, "loras: LoRA 'cut': cut.safetensors is truncated"),
    ("a cat", "old.ckpt:1", InvalidRequest, "loras: LoRA 'old.ckpt': a pickle file \\(.ckpt\\): refused"),
    ("a cat", "../loras/good:1", InvalidRequest, "loras: '../loras/good' is not a LoRA name"),
])
def test_bad_input_is_a_clear_error_and_nothing_is_written(bad_studio, prompt, loras, error, message):
    with pytest.raises(error, match=message):
        bad_studio.generate(GenerationRequest(prompt, model_id="tiny-flux", seed=1, steps=2,
                                              loras=forms.parse_loras(loras)))
    assert png_files(bad_studio.sink.outputs_dir) == [] and bad_studio.sink.store.count() == 0
    assert bad_studio.models.loads == 0 and bad_studio.models.lora_loads == 0


def transformer_weights(studio) -> dict[str, torch.Tensor]:
    slot = studio.models._slots["tiny-flux"]
    return {k.replace(".base_layer", ""): v.clone() for k, v in slot.base.transformer.state_dict().items()
            if "lora_" not in k}


def test_fuse_for_speed_draws_the_same_and_unfusing_restores_the_base_exactly(lora_studio):
    studio = lora_studio
    base = draw(studio, "tiny-flux")
    plain = transformer_weights(studio)
    unfused = draw(studio, "tiny-flux", LoraSpec("flux-style", 1.0), LoraSpec("flux-second", 0.5))
    studio.lora_fuse = True
    fused = draw(studio, "tiny-flux", LoraSpec("flux-style", 1.0), LoraSpec("flux-second", 0.5))
    assert np.abs(fused - unfused).max() <= 1                           # the same image, up to rounding
    [row] = [r for r in studio.models.lora_rows() if r.weight == 1.0]
    assert row.fused
    held = studio.models.loaded()[0].bytes
    other = draw(studio, "tiny-flux", LoraSpec("flux-style", 0.7))      # the mix changed: unfused, fused anew
    assert np.abs(other - fused).mean() > 0.1
    studio.lora_fuse = False
    assert np.array_equal(draw(studio, "tiny-flux"), base)
    after = transformer_weights(studio)
    assert all(torch.equal(after[k], plain[k]) for k in plain)          # bit for bit: the copies were put back
    assert studio.models.loaded()[0].bytes < held                       # the copies held while fused are gone
    assert studio.models.lora_loads == 2


def test_idle_loras_are_deleted_and_the_models_bytes_follow(lora_models, tmp_path):
    from studio.config import Settings
    from studio.models.adapters import IPAdapter
    from studio.models.loader import Loader
    from studio.models.lora_adapter import LoraAdapter
    from studio.models.manager import LeasePlan, ModelManager
    from studio.models.memory import Device
    from studio.models.registry import Registry

    now = [0.0]
    loader = Loader(dtype=torch.float32, device="cpu", offline=True, builtin_dir=tmp_path)
    m = ModelManager(loader, device=Device("cpu"), adapters=(LoraAdapter(idle_seconds=60, max_loaded=2,
                                                                         clock=lambda: now[0]), IPAdapter()))
    flux = Registry(Settings(models_dir=lora_models, offline=True, device="cpu")).require("tiny-flux")
    path = {n: str(lora_models / "loras" / f"{n}.safetensors") for n in ("flux-style", "flux-second")}
    path["kohya"] = str(lora_models / "loras" / "kohya" / "flux-kohya.safetensors")
    with m.lease(flux):
        pass
    bare = m.loaded()[0].bytes
    with m.lease(flux, plan=LeasePlan(loras=((path["flux-style"], 1.0),))):
        pass
    [one] = m.lora_rows()
    assert m.loaded()[0].bytes == bare + one.bytes and m.components() == []   # in the model once, nowhere else
    now[0] = 30.0
    with m.lease(flux, plan=LeasePlan(loras=((path["flux-second"], 1.0),))):
        pass
    assert {r.path for r in m.lora_rows()} == {path["flux-style"], path["flux-second"]}
    now[0] = 100.0                          # flux-style unused for 100 s > 60: deleted at the next change
    with m.lease(flux, plan=LeasePlan(loras=((path["flux-second"], 0.5),))):
        pass
    [kept] = m.lora_rows()
    assert kept.path == path["flux-second"] and m.loaded()[0].bytes == bare + kept.bytes
    for name in ("flux-style", "kohya"):    # over max_loaded (2): the least recently used goes
        now[0] += 1
        with m.lease(flux, plan=LeasePlan(loras=((path[name], 1.0),))):
            pass
    assert {r.path for r in m.lora_rows()} == {path["flux-style"], path["kohya"]}
    now[0] += 1000                          # a plain lease sweeps too, and switches LoRAs off
    with m.lease(flux) as pipe:
        assert pipe.get_list_adapters() == {"transformer": []} or not any(pipe.get_list_adapters().values())
    assert m.lora_rows() == [] and m.loaded()[0].bytes == bare


@pytest.mark.parametrize("placement", ["model_offload", "group_offload"])
def test_offload_placements_apply_and_fuse_the_same_mix(lora_models, tmp_path, placement):
    """The CPU dressed as an accelerator: diffusers' real offload hooks with LoRAs loaded, mixed,
    fused (model offload) or left unfused (group offload streams the weights), and taken off."""
    import sys

    from studio.config import Settings
    from studio.models.loader import Loader
    from studio.models.manager import LeasePlan, ModelManager
    from studio.models.registry import Registry
    from studio.requests import Task

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
    from models_fakes import PretendAccelerator

    flux = Registry(Settings(models_dir=lora_models, offline=True, device="cpu")).require("tiny-flux")
    lora = ((str(lora_models / "loras" / "flux-style.safetensors"), 1.0),)
    kw = dict(prompt="a cat", height=64, width=64, num_inference_steps=2, guidance_scale=0.0,
              max_sequence_length=32, output_type="np")
    loader = Loader(dtype=torch.float32, device="cpu", offline=True, builtin_dir=tmp_path)

    def draws(m):
        out = []
        for plan, task in ((None, Task.TXT2IMG), (LeasePlan(loras=lora), Task.TXT2IMG),
                           (LeasePlan(loras=lora, fuse_loras=True), Task.TXT2IMG),
                           (LeasePlan(loras=lora), Task.IMG2IMG), (None, Task.TXT2IMG)):
            with m.lease(flux, task, plan) as pipe:
                extra = {"image": np.full((64, 64, 3), 100, np.uint8), "strength": 0.6} if task is Task.IMG2IMG else {}
                out.append(pipe(**kw, **extra, generator=torch.Generator("cpu").manual_seed(1)).images)
        return out

    expected = draws(ModelManager(loader))
    m = ModelManager(loader, device=PretendAccelerator(10 ** 12), placement=placement, gpu_reserve=0)
    got = draws(m)
    assert m.loaded()[0].placement == placement
    assert all(np.abs(a - b).max() < 1e-4 for a, b in zip(got, expected, strict=True))
    assert np.abs(got[1] - got[0]).max() > 1e-2 and m.lora_loads == 1
