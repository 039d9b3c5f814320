"""Single-file checkpoints in models/checkpoints/ load through the studio's loader."""

import json

import numpy as np
import pytest
from safetensors.torch import save_file

from studio.config import Settings
from studio.models.tiny import build_tiny_flux_pipeline
from studio.requests import GenerationRequest
from studio.wiring import build_studio


@pytest.fixture
def models_with_flux_file(tiny_models_dir, tmp_path):
    """A FLUX transformer saved as one .safetensors file (diffusers key layout, as fine-tunes are
    shared), whose configs, text encoders and VAE come from the tiny-flux folder."""
    root = tmp_path / "models"
    (root / "checkpoints").mkdir(parents=True)
    config = tiny_models_dir / "checkpoints" / "tiny-flux"

    def add(name: str, seed: int) -> None:
        state = {k: v.contiguous() for k, v in build_tiny_flux_pipeline(seed=seed).transformer.state_dict().items()}
        save_file(state, root / "checkpoints" / f"{name}.safetensors")
        (root / "checkpoints" / f"{name}.json").write_text(json.dumps(
            {"config": str(config), "max_sequence_length": 32, "width": 64, "height": 64, "default_steps": 4}))

    add("same-weights", 0)     # the tiny-flux folder's transformer was built with seed 0
    add("other-weights", 7)
    (root / "checkpoints" / "tiny-flux").symlink_to(config, target_is_directory=True)
    return root


def test_flux_transformer_file_is_detected_and_loaded(models_with_flux_file, tmp_path):
    studio = build_studio(Settings(models_dir=models_with_flux_file, outputs_dir=tmp_path / "out",
                                   offline=True, device="cpu"))
    entry = studio.registry.require("same-weights")
    assert (entry.spec.kind, entry.family.name) == ("single_file", "flux-schnell")

    def image(model_id):
        result = studio.generate(GenerationRequest("a red circle", model_id=model_id, seed=3))
        return np.asarray(result.images[0], dtype=np.int16)

    folder, same, other = image("tiny-flux"), image("same-weights"), image("other-weights")
    assert np.array_equal(folder, same)            # the file's weights, converted and placed right
    assert np.abs(folder - other).mean() > 1.0     # ... and they really come from the file


def test_single_file_without_its_configs_offline_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    root = tmp_path / "models"
    (root / "checkpoints").mkdir(parents=True)
    state = {k: v.contiguous() for k, v in build_tiny_flux_pipeline(seed=0).transformer.state_dict().items()}
    save_file(state, root / "checkpoints" / "lonely.safetensors")
    studio = build_studio(Settings(models_dir=root, outputs_dir=tmp_path / "out", offline=True, device="cpu"))
    entry = studio.registry.get("lonely")
    assert entry.family.name == "flux-schnell" and not entry.available
    assert "black-forest-labs/FLUX.1-schnell" in entry.reason and "hf download" in entry.reason
