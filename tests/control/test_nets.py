"""Which nets a model can use: the catalog's hub nets per family, local nets told apart by config
or keys, the model's own nets per type, union modes per net; what is refused, and how it is said."""

from __future__ import annotations

import inspect

import pytest
import torch

from studio.engine import binders, controls
from studio.engine.binders import Inputs
from studio.errors import InvalidRequest, ModelUnavailable
from studio.models.catalog import FAMILIES, FLUX_UNION_MODES, XINSIR_UNION_MODES, controlnet_table
from studio.models.controlnets import inspect_local
from studio.requests import ControlUnit, GenerationRequest, Task
from tests.conftest import readme_section


def net(studio, model: str, name: str, kind: str = "canny"):
    return studio.registry.controlnet(name, studio.registry.get(model), kind)


def test_each_family_lists_its_hub_nets_and_the_readme_shows_the_catalog():
    repos = {name: [n.repo for n in f.controlnets] for name, f in FAMILIES.items()}
    assert repos["flux-dev"] == repos["flux-schnell"] == ["InstantX/FLUX.1-dev-Controlnet-Canny",
                                                          "Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro"]
    assert repos["sd15"] == ["lllyasviel/control_v11p_sd15_canny", "lllyasviel/control_v11f1p_sd15_depth",
                             "lllyasviel/control_v11p_sd15_openpose"]
    assert "xinsir/controlnet-union-sdxl-1.0" in repos["sdxl"] and repos["flux2"] == repos["sd3"] == []
    shown = readme_section("controlnet table")
    assert shown.strip() == controlnet_table()


@pytest.mark.parametrize("model, name, message", [
    ("tiny-flux", "sdxl-canny", "ControlNet 'sdxl-canny' is a SDXL net \\(ControlNetModel\\); tiny-flux .* needs a "
                                "FLUX.1 ControlNet \\(FluxControlNetModel\\)"),
    ("tiny-sd15", "sdxl-union", "'sdxl-union' is a SDXL net \\(ControlNetUnionModel\\).* needs a SD 1.5 ControlNet"),
    ("tiny-sdxl", "sd15-canny", "'sd15-canny' is a SD 1.5 net .* needs a SDXL ControlNet"),
    ("tiny-sd15", "InstantX/FLUX.1-dev-Controlnet-Canny", "is a FLUX.1 net \\(FluxControlNetModel\\)"),
])
def test_a_net_of_another_family_is_refused_naming_both(cn_studio, model, name, message):
    with pytest.raises(InvalidRequest, match=message) as info:
        net(cn_studio, model, name)
    assert info.value.field == "controls"


def test_single_files_are_told_apart_by_their_keys(tmp_path):
    from safetensors.torch import save_file

    cases = {"flux-union": {"controlnet_x_embedder.weight": (8, 4), "controlnet_mode_embedder.weight": (10, 8)},
             "sdxl": {"controlnet_cond_embedding.conv_in.weight": (2,), "add_embedding.linear_1.weight": (2,)},
             "sd15": {"control_model.input_hint_block.0.weight": (2,), "control_model.time_embed.0.weight": (2,)},
             "sd3": {"pos_embed_input.proj.weight": (2,)}, "lora": {"lora_unet.down.weight": (2,)}}
    got = {}
    for name, keys in cases.items():
        save_file({k: torch.zeros(*shape) for k, shape in keys.items()}, str(tmp_path / f"{name}.safetensors"))
        info = inspect_local(tmp_path / f"{name}.safetensors", FLUX_UNION_MODES)
        got[name] = (info.group, info.cls, info.union)
    assert got == {"flux-union": ("flux", "FluxControlNetModel", True), "sdxl": ("sdxl", "ControlNetModel", False),
                   "sd15": ("sd15", "ControlNetModel", False), "sd3": ("sd3", "SD3ControlNetModel", False),
                   "lora": (None, "", False)}


def test_each_type_takes_the_models_own_net_then_a_local_one_then_the_familys_hub_net(cn_studio):
    assert net(cn_studio, "tiny-flux", "", "depth").name == "flux-union"                 # studio.json controlnets
    assert net(cn_studio, "tiny-sdxl", "", "depth").name == "sdxl-depth"
    assert net(cn_studio, "tiny-sdxl", "", "pose").name == "sdxl-union"     # a local net of the family that reads it
    with pytest.raises(ModelUnavailable) as info:                                       # else the catalog's, offline
        net(cn_studio, "tiny-sd15", "", "pose")
    assert "`hf download lllyasviel/control_v11p_sd15_openpose`" in str(info.value) and "offline" in str(info.value)
    with pytest.raises(ModelUnavailable, match="hf download xinsir/controlnet-openpose-sdxl-1.0"):
        net(cn_studio, "tiny-sdxl", "xinsir/controlnet-openpose-sdxl-1.0")
    with pytest.raises(ModelUnavailable, match="hf download lllyasviel/control_v11p_sd15_canny"):
        net(cn_studio, "tiny-sd15", "control_v11p_sd15_canny")           # A1111's name of a catalog net
    with pytest.raises(InvalidRequest, match="has no ControlNet for 'normal'.*pick one from"):
        net(cn_studio, "tiny-sd15", "", "normal")
    listed = [n.name for n in cn_studio.registry.controlnets(cn_studio.registry.get("tiny-flux"))]
    assert listed[:3] == ["flux-union", "flux-canny", "flux-union3"] and "sdxl-canny" not in listed
    assert listed[3:] == ["InstantX/FLUX.1-dev-Controlnet-Canny", "Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro"]


def test_union_modes_are_the_nets_own(cn_studio):
    own = net(cn_studio, "tiny-flux", "flux-union")       # the model names it for canny, depth and pose
    assert own.modes == {"canny": 0, "depth": 2, "pose": 4}
    assert net(cn_studio, "tiny-flux", "flux-union3").modes == {"canny": 0, "tile": 1, "depth": 2}   # 3 modes
    assert net(cn_studio, "tiny-sdxl", "sdxl-union").modes == XINSIR_UNION_MODES
    assert controls.mode_number(own, ControlUnit("canny", "c.png", mode="depth"), 0) == 2
    with pytest.raises(InvalidRequest, match="unit 2: ControlNet 'flux-union3' has no 'pose' mode; its modes: "
                                             "canny, tile, depth"):
        controls.mode_number(net(cn_studio, "tiny-flux", "flux-union3"), ControlUnit("pose", "p.png"), 1)
    with pytest.raises(InvalidRequest, match="unit 1: ControlNet 'flux-canny' is not a union net"):
        controls.mode_number(net(cn_studio, "tiny-flux", "flux-canny"), ControlUnit("canny", "c.png", mode="tile"), 0)


def test_sdxl_union_nets_run_in_their_own_pipelines_and_beside_nothing_else(cn_studio):
    sdxl = FAMILIES["sdxl"]
    union, plain = net(cn_studio, "tiny-sdxl", "sdxl-union"), net(cn_studio, "tiny-sdxl", "sdxl-canny")
    assert controls.union_pipes(sdxl, (union, union)) and not controls.union_pipes(sdxl, (plain,))
    with pytest.raises(InvalidRequest, match="cannot run beside other ControlNets"):
        controls.union_pipes(sdxl, (union, plain))
    assert sdxl.pipe(Task.IMG2IMG, True, union=True).cls == "StableDiffusionXLControlNetUnionImg2ImgPipeline"


def test_several_units_on_one_union_net_run_as_that_one_net(cn_studio):
    from studio.models.manager import _controlnet_for

    entry, one, other = cn_studio.registry.get("tiny-flux"), torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    flux = _controlnet_for(entry, [one], 2, False)
    assert type(flux).__name__ == "FluxMultiControlNetModel" and list(flux.nets) == [one]   # run once per mode
    assert _controlnet_for(cn_studio.registry.get("tiny-sdxl"), [one], 3, True) is one     # every mode, one call
    assert type(_controlnet_for(cn_studio.registry.get("tiny-sdxl"), [one, other], 2, True)).__name__ == \
        "MultiControlNetUnionModel"
    plan = cn_studio._plan(entry, req := GenerationRequest("x", controls=(
        ControlUnit("canny", "c.png", model="flux-union"), ControlUnit("depth", "d.png", model="flux-union"),
        ControlUnit("pose", "p.png", model="flux-canny", scale=0.0))), controls.nets_for(cn_studio.registry, entry, req))
    assert plan.shared and plan.modes == (0, 2) and len(plan.controlnets) == 2       # the scale-0 unit is left out


@pytest.mark.parametrize("task", list(Task))
def test_sdxl_union_pipelines_take_every_keyword_the_binders_give(task):
    import diffusers

    family = FAMILIES["sdxl"]
    spec = family.pipe(task, True, union=True)
    images = {"init_image": "i.png", "strength": 0.5} if task is not Task.TXT2IMG else {}
    if task is Task.INPAINT:
        images["mask_image"] = "m.png"
    req = GenerationRequest("a cat", task=task, negative_prompt="blurry", width=64, height=64, steps=2, guidance=5.0,
                            seed=1, controls=(ControlUnit("canny", "c.png"), ControlUnit("depth", "d.png")), **images)
    assert binders.check(family, req, union=True) is spec
    kwargs = binders.bind(family, spec, req, Inputs(init="I", mask="M", control_maps=("C", "D"), union=(True, True),
                                                    modes=(3, 1)), max_sequence_length=None)
    takes = set(inspect.signature(getattr(diffusers, spec.cls).__call__).parameters)
    assert set(kwargs) <= takes and kwargs["control_mode"] == [3, 1] and kwargs["control_image"] == ["C", "D"]
    assert spec.size == ({"height", "width"} <= takes) and spec.control_mode == ("control_mode" in takes)
