"""Studio.generate with the tiny FLUX pipeline writes one gallery row per image; re-generate
from a row gives the same pixels (same device and dtype: CPU float32 here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.config import Settings
from studio.gallery.pnginfo import read_image_info
from studio.gallery.sink import GallerySink
from studio.requests import GenerationRequest
from studio.wiring import build_studio

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio")
    return build_studio(Settings(models_dir=root / "models", outputs_dir=root / "outputs", offline=True, device="cpu"))


def test_wiring_uses_the_gallery_sink(studio):
    assert isinstance(studio.sink, GallerySink)


def test_generate_writes_one_row_per_image_and_regenerate_is_bit_identical(studio):
    store = studio.sink.store
    before = store.count()
    result = studio.generate(GenerationRequest("a red cat", model_id="tiny-random", seed=11, batch_size=2, batch_count=2))
    assert store.count() == before + 4
    ids = [s.image_id for s in result.saved]
    assert None not in ids and len(set(ids)) == 4
    for saved, seed in zip(result.saved, result.seeds, strict=True):
        record = store.get(saved.image_id)
        assert record.path == saved.path and record.seed == seed
        assert record.model_id == "tiny-random" and record.model_revision == "builtin"
        assert record.request.seed == seed and record.request.batch_size == 1
        assert read_image_info(record.path).request == record.request
        assert dict(record.timings)["generate"] > 0

    third = store.get(ids[2])                  # batch 1, image 0: its own seed
    again = studio.generate(store.request_of(third.id))
    original = np.asarray(result.images[2])
    assert np.array_equal(np.asarray(again.images[0]), original)
    from PIL import Image

    with Image.open(third.path) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), original)
    assert store.search(text="red cat", model_id="tiny-random").total == 5
