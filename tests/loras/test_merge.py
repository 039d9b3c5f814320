"""Merging the mix into a model: a new diffusers folder in models/checkpoints/ that the picker
lists and that draws what the base with the mix draws, the cached model left as it was."""

from __future__ import annotations

import json

import numpy as np
import pytest

from studio.errors import InvalidRequest
from studio.requests import GenerationRequest, LoraSpec
from tests.loras.test_records import MIX


def draw(studio, model, loras=()):
    result = studio.generate(GenerationRequest("a red circle", model_id=model, seed=9, steps=2, loras=loras))
    return np.asarray(result.images[0], dtype=np.int16)


def test_merge_writes_a_checkpoint_the_picker_lists_and_it_draws_the_mix(own_studio):
    studio = own_studio
    base, mixed = draw(studio, "tiny-flux"), draw(studio, "tiny-flux", MIX)
    entry = studio.merge_loras("tiny-flux", MIX, "tiny-flux-merged")
    folder = studio.registry.checkpoints_dir / "tiny-flux-merged"
    assert entry.id == "tiny-flux-merged" and entry.available and entry.family.name == "flux-schnell"
    assert "tiny-flux-merged" in studio.registry.ids()
    meta = json.loads((folder / "studio.json").read_text())
    assert [x["name"] for x in meta["merged_from"]["loras"]] == ["flux-style", "flux-second"]
    assert meta["default_steps"] == 4 and len(meta["merged_from"]["loras"][0]["hash"]) == 64
    assert not any(p.name.startswith(".") for p in folder.parent.iterdir())      # no partial folder left
    merged = draw(studio, "tiny-flux-merged")
    assert np.abs(merged - mixed).max() <= 1                  # the mix, baked in (up to float rounding)
    assert np.array_equal(draw(studio, "tiny-flux"), base)    # the cached model was never changed
    from safetensors import safe_open

    with safe_open(folder / "transformer" / "diffusion_pytorch_model.safetensors", "pt") as f:
        assert not [k for k in f.keys() if "lora" in k or "base_layer" in k]


@pytest.mark.parametrize("name, loras, message", [
    ("../escape", MIX, "name: a checkpoint name is letters"),
    ("tiny-flux", MIX, "name: 'tiny-flux' is taken"),
    ("fresh", (), "loras: the mix is empty"),
    ("fresh", (LoraSpec("flux-style", 3.0),), "loras: weight of 'flux-style' must be within -2..2"),
])
def test_merge_refuses_bad_input_and_writes_nothing(own_studio, name, loras, message):
    folder = own_studio.registry.checkpoints_dir
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(InvalidRequest, match=message):
        own_studio.merge_loras("tiny-flux", loras, name)
    assert sorted(p.name for p in folder.iterdir()) == before
