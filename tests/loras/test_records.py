"""What an image records of its LoRAs (A1111's tags and "Lora hashes"), and what reads it back:
PNG Info finds the local files by hash, a re-generate picks the same files after a rename, a
missing LoRA is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.errors import ModelUnavailable
from studio.gallery import browse
from studio.gallery.files import read_text_chunks, write_png
from studio.gallery.pnginfo import read_image_info
from studio.requests import GenerationRequest, LoraSpec
from tests.conftest import png_files

MIX = (LoraSpec("flux-style", 1.0), LoraSpec("flux-second", 0.5))


def generate(studio):
    return studio.generate(GenerationRequest("a red circle", model_id="tiny-flux", seed=5, steps=2, loras=MIX))


def test_infotext_has_the_tags_and_a1111_hashes_and_the_request_the_full_hashes(own_studio):
    result = generate(own_studio)
    library = own_studio.registry.lora_library
    full = {n: library.hash(library.find(n)) for n in ("flux-style", "flux-second")}
    text = read_text_chunks(Path(result.saved[0].path))
    first, params = text["parameters"].splitlines()
    assert first == "a red circle <lora:flux-style:1> <lora:flux-second:0.5>"
    assert f'Lora hashes: "flux-style: {full["flux-style"][:12]}, flux-second: {full["flux-second"][:12]}"' in params
    assert GenerationRequest.from_json(text["studio"]).loras == tuple(
        LoraSpec(x.name, x.weight, full[x.name]) for x in MIX)
    assert result.request.prompt == "a red circle"                      # the model never read the tags


def test_regenerate_picks_the_same_file_by_hash_after_a_rename(own_studio):
    studio = own_studio
    first = generate(studio)
    folder = studio.registry.lora_library.folder
    (folder / "flux-second.safetensors").rename(folder / "renamed.safetensors")
    again = browse.regenerate(studio, studio.sink.store, first.saved[0].image_id)
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(first.images[0]))
    assert any("LoRA 'flux-second' is now 'renamed' (found by its hash" in n for n in again.notices)
    assert [x.name for x in again.request.loras] == ["flux-style", "renamed"]


def test_a_missing_lora_is_named_and_nothing_is_written(own_studio):
    studio = own_studio
    first = generate(studio)
    (studio.registry.lora_library.folder / "flux-second.safetensors").unlink()
    before = png_files(studio.sink.outputs_dir)
    with pytest.raises(ModelUnavailable, match=r"LoRA 'flux-second' \(hash [0-9a-f]{12}\) is not in .*by name or by "
                                               "hash"):
        browse.regenerate(studio, studio.sink.store, first.saved[0].image_id)
    assert png_files(studio.sink.outputs_dir) == before


def test_png_info_resolves_an_a1111_images_hashes_to_local_files(own_studio, tmp_path):
    from studio.ui.tab_pnginfo import _loras

    library = own_studio.registry.lora_library
    short = library.hash(library.find("flux-second"))[:12]
    a1111 = write_png(Image.new("RGB", (64, 64)), tmp_path / "a1111.png", {"parameters": (
        "a red circle <lora:their_name:0.8> <lora:gone:1>\nSteps: 4, Sampler: Euler, CFG scale: 0, Seed: 2, "
        f'Size: 64x64, Model: tiny-flux, Lora hashes: "their_name: {short}, gone: 0123456789ab"')})
    info = read_image_info(a1111)
    assert info.request.loras == (LoraSpec("their_name", 0.8, short), LoraSpec("gone", 1.0, "0123456789ab"))
    said = _loras(own_studio, info)
    assert f"their_name 0.8 (hash {short}): flux-second.safetensors (found by its hash)" in said
    assert "gone 1 (hash 0123456789ab): not in the LoRA folder" in said
    # send-to takes the local name, and names what it left out
    local = [library.describe(x)[0].name for x in info.request.loras]
    assert local == ["flux-second", "gone"]
