"""Inpaint models: a FLUX.1 Fill model runs FluxFillPipeline, an SD inpainting checkpoint its
family's inpaint class on its 9-channel UNet; the registry tells them by their data (pipeline class,
first-layer channels, the user's studio.json), the catalog picks the class."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.errors import InvalidRequest
from studio.models.catalog import FAMILIES, inpaint_variant
from studio.requests import GenerationRequest, Task


def test_the_catalog_picks_fill_and_inpaint_classes_and_nothing_else():
    assert FAMILIES["flux-fill"].pipeline_class(Task.INPAINT) == "FluxFillPipeline"
    assert FAMILIES["sd15-inpaint"].pipeline_class(Task.INPAINT) == "StableDiffusionInpaintPipeline"
    assert FAMILIES["sdxl-inpaint"].pipeline_class(Task.INPAINT) == "StableDiffusionXLInpaintPipeline"
    assert FAMILIES["flux-dev"].pipeline_class(Task.INPAINT) == "FluxInpaintPipeline"     # a base model
    for name in ("flux-fill", "sd15-inpaint", "sdxl-inpaint"):
        assert FAMILIES[name].base_task is Task.INPAINT
        with pytest.raises(InvalidRequest) as info:
            FAMILIES[name].pipe(Task.TXT2IMG)
        assert info.value.field == "task"
    assert FAMILIES["sd15"].base_task is Task.TXT2IMG
    # the first layer tells an inpaint model: 9 channels on SD; on FLUX more than twice its output
    assert inpaint_variant("sd15", 9) == "sd15-inpaint" and inpaint_variant("sd15", 4) == "sd15"
    assert inpaint_variant("flux-dev", 384) == "flux-fill" and inpaint_variant("flux-dev", 64) == "flux-dev"
    assert inpaint_variant("flux-dev", 128, 64) == "flux-dev"                 # FLUX.1 Canny/Depth (Control)
    assert inpaint_variant("flux-schnell", 288, 16) == "flux-fill"            # the tiny Fill model
    assert inpaint_variant("sd3", 9) == "sd3"


def _registry(models: Path):
    from studio.config import Settings
    from studio.models.registry import Registry

    return Registry(Settings(models_dir=models, outputs_dir=models / "out", offline=True), hub_models=())


def test_the_registry_tells_inpaint_models_by_class_channels_sidecar_and_file_shapes(tmp_path):
    from safetensors.numpy import save_file

    checkpoints = tmp_path / "checkpoints"
    for name, cls, part, channels in (("fill", "FluxFillPipeline", "transformer", 384),
                                      ("saved-as-base", "StableDiffusionPipeline", "unet", 9),
                                      ("plain", "StableDiffusionPipeline", "unet", 4)):
        (checkpoints / name / part).mkdir(parents=True)
        (checkpoints / name / "model_index.json").write_text(json.dumps({"_class_name": cls}))
        (checkpoints / name / part / "config.json").write_text(json.dumps({"in_channels": channels}))
    (checkpoints / "told" / "unet").mkdir(parents=True)
    (checkpoints / "told" / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    (checkpoints / "told" / "studio.json").write_text(json.dumps({"family": "sdxl-inpaint"}))
    text_key = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
    for name, channels in (("sd15-inpainting", 9), ("sd15-plain", 4)):
        save_file({"model.diffusion_model.input_blocks.0.0.weight": np.zeros((8, channels, 3, 3), np.float16),
                   text_key: np.zeros((4, 4), np.float16)}, str(checkpoints / f"{name}.safetensors"))
    families = {e.id: e.family.name for e in _registry(tmp_path).entries() if e.spec.kind != "builtin"
                and e.id != "demo"}
    assert families == {"fill": "flux-fill", "saved-as-base": "sd15-inpaint",
                        "plain": "sd15", "told": "sdxl-inpaint", "sd15-inpainting": "sd15-inpaint",
                        "sd15-plain": "sd15"}


@pytest.fixture(scope="module")
def inpaint_studio(tmp_path_factory):
    from studio.config import Settings
    from studio.models.tiny import save_tiny
    from studio.wiring import build_studio

    root = tmp_path_factory.mktemp("inpaint-models")
    for kind in ("flux-fill", "sd15-inpaint"):
        folder = save_tiny(kind, root / "checkpoints" / f"tiny-{kind}", seed=0)
        (folder / "studio.json").write_text('{"max_sequence_length": 32, "default_steps": 3, "width": 64, "height": 64}')
    return build_studio(Settings(models_dir=root, outputs_dir=root / "out", offline=True, device="cpu"))


@pytest.mark.parametrize("model, cls", [("tiny-flux-fill", "FluxFillPipeline"),
                                        ("tiny-sd15-inpaint", "StableDiffusionInpaintPipeline")])
def test_inpaint_models_run_their_own_class_and_keep_the_outside(inpaint_studio, tmp_path, model, cls):
    photo = Image.new("RGB", (64, 64), (30, 90, 200))
    ImageDraw.Draw(photo).ellipse((8, 8, 40, 40), fill=(240, 200, 20))
    photo.save(tmp_path / "photo.png")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 0, 64, 64))
    mask.save(tmp_path / "mask.png")
    entry = inpaint_studio.entry(model)
    assert entry.family.name == model.removeprefix("tiny-")
    result = inpaint_studio.generate(GenerationRequest("a cat", model_id=model, task=Task.INPAINT, seed=4,
                                                       init_image=str(tmp_path / "photo.png"),
                                                       mask_image=str(tmp_path / "mask.png")))
    with inpaint_studio.models.lease(entry, Task.INPAINT) as pipe:
        assert type(pipe).__name__ == cls
    out, before = np.asarray(result.images[0], np.int16), np.asarray(photo, np.int16)
    assert np.array_equal(out[:, :32], before[:, :32]) and np.abs(out[:, 32:] - before[:, 32:]).mean() > 1
    assert result.saved and result.request.task is Task.INPAINT
    with pytest.raises(InvalidRequest) as info:                  # an inpaint model does only inpaint
        inpaint_studio.generate(GenerationRequest("a cat", model_id=model, seed=1))
    assert info.value.field == "task" and "no txt2img pipeline" in str(info.value)


def test_flux_fill_dev_is_listed_and_says_how_to_get_it_offline(tmp_path):
    from studio.config import Settings
    from studio.errors import ModelUnavailable
    from studio.models.registry import Registry

    registry = Registry(Settings(models_dir=tmp_path, outputs_dir=tmp_path / "out", offline=True))
    entry = registry.get("flux-fill-dev")
    assert entry.family.pipeline_class(Task.INPAINT) == "FluxFillPipeline" and entry.spec.gated
    if not entry.available:                                        # not in this machine's hub cache
        with pytest.raises(ModelUnavailable, match="hf download black-forest-labs/FLUX.1-Fill-dev"):
            registry.require("flux-fill-dev")
