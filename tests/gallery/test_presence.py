"""Models and LoRAs by the hashes other tools write: computed once per file version, matched in
every form tools write them, shown per row, and re-generate uses a renamed file or names what is missing."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from studio.config import Settings
from studio.errors import ModelUnavailable
from studio.gallery import browse
from studio.gallery.files import write_png
from studio.models import filehash
from studio.models.filehash import HashCache, compute
from studio.requests import GenerationRequest, LoraSpec
from tests.gallery.conftest import image


def safetensors_file(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    save_file({"lora_unet_down.weight": rng.random((64, 64), dtype=np.float32)}, str(path),
              metadata={"ss_output_name": "detail"})
    return path


def test_hashes_are_the_ones_tools_write(tmp_path):
    path = safetensors_file(tmp_path / "detail.safetensors")
    data = path.read_bytes()
    header = struct.unpack("<Q", data[:8])[0]
    hashes = compute(path)
    assert hashes.sha256 == hashlib.sha256(data).hexdigest()
    assert hashes.tensors == hashlib.sha256(data[8 + header:]).hexdigest()      # kohya-ss addnet: after the header
    for written in (hashes.sha256[:10], hashes.sha256[:10].upper(), hashes.tensors[:12], "0x" + hashes.tensors,
                    "sha256:" + hashes.sha256):
        assert hashes.matches(written), written
    for other in ("blake3:" + hashes.sha256, hashes.sha256[:6], "", "zz" + hashes.sha256[:10]):
        assert not hashes.matches(other), other
    save_file({"lora_unet_down.weight": np.random.default_rng(0).random((64, 64), dtype=np.float32)}, str(path),
              metadata={"ss_output_name": "renamed in its header"})
    assert compute(path).tensors == hashes.tensors and compute(path).sha256 != hashes.sha256


def test_each_file_version_is_read_once_and_kept_on_disk(tmp_path, monkeypatch):
    path = safetensors_file(tmp_path / "a.safetensors")
    cache = HashCache(tmp_path / "cache" / "file-hashes.json")
    first = cache.of(path)
    monkeypatch.setattr(filehash, "compute", lambda p: pytest.fail("read again"))
    assert HashCache(tmp_path / "cache" / "file-hashes.json").of(path) == first      # from disk, not the file
    monkeypatch.undo()
    safetensors_file(path, seed=1)                                                     # a new version
    assert cache.of(path) != first


@pytest.fixture
def flux_file_models(tiny_models_dir, tmp_path) -> Path:
    """A models folder whose checkpoints/ holds one FLUX transformer file and loras/ one LoRA file."""
    from safetensors.torch import save_file as save_torch

    from studio.models.tiny import build_tiny_flux_pipeline

    root = tmp_path / "models"
    (root / "checkpoints").mkdir(parents=True)
    state = {k: v.contiguous() for k, v in build_tiny_flux_pipeline(seed=0).transformer.state_dict().items()}
    save_torch(state, root / "checkpoints" / "my-flux.safetensors")
    (root / "checkpoints" / "my-flux.json").write_text(json.dumps(
        {"config": str(tiny_models_dir / "checkpoints" / "tiny-flux"), "max_sequence_length": 32, "width": 64,
         "height": 64, "default_steps": 4}))
    safetensors_file(root / "loras" / "local_detail.safetensors")
    return root


def test_a_row_from_elsewhere_finds_its_renamed_model_by_hash_and_regenerates(flux_file_models, tmp_path):
    from studio.wiring import build_studio

    settings = Settings(models_dir=flux_file_models, outputs_dir=tmp_path / "out", cache_dir=tmp_path / "cache",
                        offline=True, device="cpu")
    studio = build_studio(settings)
    store = studio.sink.store
    files = browse.local_files(studio, settings)
    model = compute(flux_file_models / "checkpoints" / "my-flux.safetensors")
    lora = compute(flux_file_models / "loras" / "local_detail.safetensors")
    text = ("a red circle\nSteps: 4, Sampler: Euler, CFG scale: 0, Seed: 3, Size: 64x64, "
            f"Model hash: {model.sha256[:10]}, Model: flux_from_civitai_v2")
    found = write_png(image(), tmp_path / "downloads" / "a.png", {"parameters": text})
    row = store.get(store.import_image(found))
    presence = files.of_record(row)
    assert presence.model.present and presence.model.by == "hash" and presence.model.local == "my-flux"
    assert "flux_from_civitai_v2" in presence.line() and "present (as my-flux.safetensors, by hash)" in presence.line()
    assert "present" in browse.summary(row, presence)
    again = browse.regenerate(studio, store, row.id, files)
    direct = studio.generate(GenerationRequest("a red circle", model_id="my-flux", seed=3, steps=4, guidance=0.0,
                                               width=64, height=64, scheduler="Euler"))
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(direct.images[0]))
    assert store.get(again.saved[0].image_id).model_id == "my-flux"

    # LoRAs: one here under another name (by its AutoV3 hash), one not here at all
    text = ("a red circle <lora:detail_v2:0.5> <lora:gone_style:0.8>\nSteps: 4, Sampler: Euler, CFG scale: 0, "
            f'Seed: 3, Size: 64x64, Model: my-flux, Lora hashes: "detail_v2: {lora.tensors[:12]}, gone_style: 0123456789ab"')
    other = store.get(store.import_image(write_png(image((1, 2, 3)), tmp_path / "downloads" / "b.png",
                                                   {"parameters": text})))
    presence = files.of_record(other)
    before = store.count()
    assert [(f.name, f.local, f.by) for f in presence.loras] == [("detail_v2", "local_detail", "hash"),
                                                                  ("gone_style", "", "")]
    assert presence.apply(other.request).loras == (LoraSpec("local_detail", 0.5, lora.tensors[:12]),
                                                   LoraSpec("gone_style", 0.8, "0123456789ab"))
    with pytest.raises(ModelUnavailable) as caught:
        browse.regenerate(studio, store, other.id, files)
    message = str(caught.value)
    assert f"re-generating #{other.id}" in message and "LoRA 'gone_style' (hash 0123456789ab" in message
    assert str(flux_file_models / "loras") in message and "detail_v2" not in message
    assert store.count() == before                                # nothing ran, nothing written


def test_a_missing_model_is_named_with_its_hash_and_folder(tmp_path):
    from studio.wiring import build_studio

    settings = Settings(models_dir=tmp_path / "models", outputs_dir=tmp_path / "out", offline=True, device="cpu")
    (tmp_path / "models").mkdir()
    studio = build_studio(settings)
    text = "a fox\nSteps: 4, Sampler: Euler, CFG scale: 0, Seed: 3, Size: 64x64, Model hash: aeb7e9e689, Model: jugg"
    row = studio.sink.store.get(studio.sink.store.import_image(write_png(image(), tmp_path / "x.png",
                                                                         {"parameters": text})))
    files = browse.local_files(studio, settings)
    assert files.of_record(row).line() == "model 'jugg' (hash aeb7e9e689) missing"
    with pytest.raises(ModelUnavailable, match=r"model 'jugg' \(hash aeb7e9e689, as its tool named the file\) is not "
                                               rf"in {tmp_path / 'models' / 'checkpoints'}"):
        browse.regenerate(studio, studio.sink.store, row.id, files)
