"""Seeds up to 2^64-1, end to end: request, infotext, form/API value, gallery column (sort and
search), and a 64-bit seed re-generates the same pixels."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import torch
from sqlalchemy import text

from studio import forms
from studio.config import Settings
from studio.errors import InvalidRequest
from studio.gallery import db as gallery_db
from studio.gallery.files import write_png
from studio.gallery.infotext import format_infotext, request_from_infotext
from studio.gallery.store import GalleryStore, NewImage
from studio.requests import LIMITS, MAX_SEED, GenerationRequest
from studio.wiring import build_studio
from tests.gallery.conftest import image, request

torch.set_num_threads(1)
BIG = [0, 1, 2**32 - 1, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1]


def test_the_bound_is_2_to_the_64_minus_1_and_batches_wrap():
    assert LIMITS["seed"] == (0, 2**64 - 1) == (0, MAX_SEED)
    GenerationRequest("x", seed=2**64 - 1)
    with pytest.raises(InvalidRequest, match=r"seed: must be within 0..18446744073709551615, got 18446744073709551616"):
        GenerationRequest("x", seed=2**64)
    req = GenerationRequest("x", seed=2**64 - 2, batch_size=2, batch_count=2)
    assert [req.seed_of(b, i) for b in range(2) for i in range(2)] == [2**64 - 2, 2**64 - 1, 0, 1]


@pytest.mark.parametrize("seed", BIG)
def test_infotext_and_json_keep_every_digit(seed):
    req = request("a cat", seed=seed)
    assert f"Seed: {seed}," in format_infotext(req, seed)
    assert request_from_infotext(format_infotext(req, seed)).seed == seed
    assert GenerationRequest.from_json(req.to_json()).seed == seed


def test_form_and_api_values_stay_exact():
    assert forms.number("seed", "18446744073709551615") == 2**64 - 1      # the seed box sends text
    assert forms.number("seed", " 9007199254740993 ") == 2**53 + 1         # a float would say ...992
    assert forms.number("seed", 2**64 - 1) == 2**64 - 1                    # an int from the API
    assert forms.number("seed", "-1") == -1 and forms.number("seed", "1e3") == 1000
    with pytest.raises(InvalidRequest, match="seed: must be a whole number"):
        forms.number("seed", "1.5")


def _row(outputs, name: str, seed: int | None) -> NewImage:
    return NewImage(path=outputs / f"{name}.png", sha256=name, task="txt2img", model_id="m", prompt=name, seed=seed,
                    width=64, height=64, source="import")


def test_gallery_column_stores_sorts_and_finds_64_bit_seeds(store, outputs):
    seeds = [2**64 - 1, 5, None, 2**63, 2**63 - 1, 0]
    ids = store.add_many([_row(outputs, f"s{i}", s) for i, s in enumerate(seeds)])
    assert [store.get(i).seed for i in ids] == seeds
    ordered = [r.seed for r in store.search(sort="seed").items]
    assert ordered == [None, 0, 5, 2**63 - 1, 2**63, 2**64 - 1]          # unknown first, then ascending
    with store.engine.connect() as conn:                                  # below 2^63 the column reads plainly
        raw = dict(conn.execute(text("SELECT prompt, seed FROM images")).all())
        plan = " ".join(r[-1] for r in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT id FROM images ORDER BY images.seed < 0, images.seed, images.id").all())
    assert raw["s1"] == 5 and raw["s0"] == -1 and raw["s2"] is None
    assert "ix_images_seed_order" in plan and "TEMP B-TREE" not in plan
    for seed in (2**64 - 1, 2**63, 5):
        found = store.search(text=f"seed:{seed}").items
        assert [r.seed for r in found] == [seed]
    with pytest.raises(InvalidRequest, match="seed"):
        store.search(text="seed:18446744073709551616")


def test_revision_5_turns_the_old_no_seed_into_null_and_keeps_loras_and_tags(tmp_path):
    outputs = tmp_path / "out"
    outputs.mkdir()
    db_path = outputs / "gallery.db"
    engine = gallery_db.make_engine(db_path)
    gallery_db.migrate(engine, db_path, "0004")
    with engine.begin() as conn:
        for i, seed in ((1, -1), (2, 4294967295)):
            conn.execute(text(
                "INSERT INTO images (id, created_at, path, sha256, task, model_id, prompt, seed, width, height, loras, "
                "controls, timings, lora_names, source) VALUES (:i, '2026-01-02 03:04:05', :p, 'x', 'txt2img', 'sdxl', "
                "'an old lighthouse', :s, 1024, 1024, '[{\"name\": \"grain\", \"weight\": 0.5}]', '[]', '{}', 'grain', "
                "'import')"), {"i": i, "p": f"{i}.png", "s": seed})
            conn.execute(text("INSERT INTO image_loras (image_id, name, weight) VALUES (:i, 'grain', 0.5)"), {"i": i})
            conn.execute(text("INSERT INTO image_tags (image_id, tag) VALUES (:i, 'keeper')"), {"i": i})
    engine.dispose()
    with GalleryStore(outputs, reconcile=False) as store:
        assert [store.get(i).seed for i in (1, 2)] == [None, 4294967295]
        assert store.search(lora="grain").total == 2 and store.search(text="lighthouse").total == 2
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("SELECT count(*) FROM image_tags").fetchone()[0] == 2
            triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
            assert triggers == {"images_fts_ai", "images_fts_ad", "images_fts_au"}
            assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 0        # a plain connection
        with store.engine.connect() as conn:                                      # the store's: back on
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        store.delete([1])                                                         # the cascade still works
        assert store.lora_names() == ["grain"] and store.search(lora="grain").total == 1


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    return build_studio(Settings(models_dir=root / "models", outputs_dir=root / "outputs", offline=True, device="cpu"))


def test_a_64_bit_seed_regenerates_the_same_pixels_and_wraps_to_zero(studio):
    store = studio.sink.store
    result = studio.generate(GenerationRequest("a red cat", model_id="tiny-random", seed=2**64 - 1, batch_size=2))
    assert result.seeds == (2**64 - 1, 0)
    first, second = (store.get(s.image_id) for s in result.saved)
    assert (first.seed, second.seed) == (2**64 - 1, 0)
    assert "Seed: 18446744073709551615," in first.infotext and first.path.endswith("-18446744073709551615.png")
    again = studio.generate(store.request_of(first.id))
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(result.images[0]))
    zero = studio.generate(GenerationRequest("a red cat", model_id="tiny-random", seed=0))
    assert np.array_equal(np.asarray(zero.images[0]), np.asarray(result.images[1]))
    assert not np.array_equal(np.asarray(zero.images[0]), np.asarray(result.images[0]))


def test_a_foreign_64_bit_seed_is_read_from_its_png(store, outputs):
    req = request("a fish", seed=6952411511246973023)
    path = write_png(image(), outputs / "f.png", {"parameters": format_infotext(req, req.seed)})
    image_id = store.reimport(path)
    assert store.get(image_id).seed == 6952411511246973023
