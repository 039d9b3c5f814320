"""Stored inputs and the gallery: which row uses which input (``image_inputs``), deletes that keep
what another row (or a run) still uses, reconcile, export, and the 0004 back-fill."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import zipfile
from pathlib import Path

import pytest

from studio.gallery import db as gallery_db
from studio.gallery import store as store_module
from studio.gallery.inputs import InputStore
from studio.gallery.store import GalleryStore
from studio.requests import GenerationRequest, Task
from tests.gallery.conftest import image, request

HOURS_AGO_2 = time.time() - 7200


def inputs_on_disk(outputs: Path) -> list[str]:
    folder = outputs / "inputs"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def save_using(sink, entry, *, seed: int, init: str, mask: str | None = None):
    """A row as the studio writes it for an img2img (or, with ``mask``, inpaint) request on stored inputs."""
    task = Task.INPAINT if mask else Task.IMG2IMG
    req = request(f"from an input {seed}", seed=seed, task=task, init_image=init, mask_image=mask, strength=0.5)
    return sink.save(req, [image((seed * 30 % 255, 0, 0))], [seed], entry=entry, timings={})[0]


def age(path: Path, when: float = HOURS_AGO_2) -> None:
    os.utime(path, (when, when))


@pytest.fixture
def shared(store, sink, entry):
    """Two rows reading one stored init image; the second also a mask of its own."""
    init = store.inputs.put(image((10, 200, 10)))
    mask = store.inputs.put(image((255, 255, 255)).convert("L"))
    a = save_using(sink, entry, seed=1, init=init)
    b = save_using(sink, entry, seed=2, init=init, mask=mask)
    return init, mask, a.image_id, b.image_id


# -- which row uses which input --------------------------------------------------------------------
def test_rows_record_the_stored_inputs_their_request_reads(store, shared):
    init, mask, a, b = shared
    assert store.inputs_of([a, b]) == {a: (init,), b: tuple(sorted((init, mask)))}
    assert store.ids_using_input(init) == [a, b] and store.ids_using_input(mask) == [b]
    assert store.request_of(b).input_images == {"init_image": init, "mask_image": mask}


def test_delete_keeps_a_shared_input_until_its_last_row_goes(store, shared, outputs):
    init, mask, a, b = shared
    assert store.delete([a]) == 1
    assert (outputs / init).is_file() and (outputs / mask).is_file()          # b still reads both
    assert store.ids_using_input(init) == [b]
    assert store.delete([b]) == 1
    assert inputs_on_disk(outputs) == [] and store.ids_using_input(init) == []


def test_deleting_every_user_at_once_removes_the_inputs(store, shared, outputs):
    init, mask, a, b = shared
    assert store.delete([a, b]) == 2
    assert inputs_on_disk(outputs) == []


def test_delete_keeps_an_input_a_run_stored_again_since_and_reconcile_removes_it_later(store, sink, entry, outputs):
    init = store.inputs.put(image((10, 200, 10)))
    first = save_using(sink, entry, seed=1, init=init)
    time.sleep(0.05)
    again = request("re-generated", seed=1, task=Task.IMG2IMG, init_image=init, strength=0.5)
    assert store.inputs.store_request(again) == again                 # a run starts from the same input...
    assert store.delete([first.image_id]) == 1                        # ...and its first row is deleted meanwhile
    assert (outputs / init).is_file()
    report = store.reconcile()
    assert report.inputs_removed == 0 and (outputs / init).is_file()  # an hour for the run to write its row
    age(outputs / init)
    report = store.reconcile()
    assert report.inputs_removed == 1 and inputs_on_disk(outputs) == []


def test_an_input_a_run_reads_survives_deleting_its_rows_and_goes_later(store, sink, entry, outputs):
    """A run's later batches still read its init image while an earlier batch's row is deleted."""
    init = store.inputs.put(image((40, 40, 200)))
    age(outputs / init)                                       # stored long ago: the mtime rule alone would not keep it
    first = save_using(sink, entry, seed=5, init=init)
    with store.inputs.using([init]):
        store.delete([first.image_id])
        assert (outputs / init).is_file()
        store.reconcile(full=True)
        assert (outputs / init).is_file()
    age(outputs / init)
    store.reconcile(full=True)
    assert not (outputs / init).exists()


def test_failed_delete_puts_image_and_input_files_back(store, shared, outputs, monkeypatch):
    init, mask, a, b = shared
    paths = {i: Path(store.get(i).path) for i in (a, b)}
    real, seen = store_module._to_trash, []

    def second_input_fails(path):
        if path.parent.name == "inputs":
            seen.append(path)
            if len(seen) == 2:                 # the first input is renamed already, inside the transaction
                raise OSError("disk said no")
        return real(path)

    monkeypatch.setattr(store_module, "_to_trash", second_input_fails)
    with pytest.raises(OSError, match="disk said no"):
        store.delete([a, b])
    monkeypatch.undo()
    assert store.get(a) is not None and store.get(b) is not None and all(p.is_file() for p in paths.values())
    assert inputs_on_disk(outputs) == sorted(Path(r).name for r in (init, mask))
    assert store.ids_using_input(init) == [a, b]


# -- reconcile ---------------------------------------------------------------------------------------
def test_reconcile_removes_old_unused_inputs_and_keeps_fresh_and_used_ones(store, sink, entry, outputs):
    used = store.inputs.put(image((10, 200, 10)))
    save_using(sink, entry, seed=1, init=used)
    fresh = store.inputs.put(image((1, 2, 3)))                  # a run may not have written its row yet
    old = store.inputs.put(image((4, 5, 6)))
    stale_tmp, fresh_tmp = outputs / "inputs" / ".tmp-abc.png", outputs / "inputs" / ".tmp-def.png"
    stale_tmp.write_bytes(b"half")
    fresh_tmp.write_bytes(b"half")
    for path in (outputs / used, outputs / old, stale_tmp):
        age(path)
    with GalleryStore(outputs) as started:                      # at start
        report = started.last_reconcile
    assert (report.inputs_removed, report.missing_inputs, report.errors) == (1, (), ())
    assert inputs_on_disk(outputs) == sorted([Path(used).name, Path(fresh).name, fresh_tmp.name])
    assert store.count() == 1                                    # inputs are never imported as gallery images
    age(outputs / "inputs")                                      # the folder quiet since
    assert store.reconcile().inputs_removed == 0                 # the fresh one is still young
    age(outputs / fresh)                                         # (its folder's mtime stays as it was)
    assert store.reconcile().inputs_removed == 1                 # looked at again: it held a young one
    assert inputs_on_disk(outputs) == sorted([Path(used).name, fresh_tmp.name])


def test_reconcile_reports_a_row_whose_input_is_missing_until_it_is_back(store, sink, entry, outputs):
    init = store.inputs.put(image((10, 200, 10)))
    saved = save_using(sink, entry, seed=1, init=init)
    (outputs / init).unlink()
    for _ in range(3):                                           # every pass says so, the folder quiet or not
        report = store.reconcile()
        age(outputs / "inputs")
        assert report.missing_inputs == ((saved.image_id, init),) and report.errors == ()
        assert store.get(saved.image_id) is not None and not store.get(saved.image_id).missing
    assert store.inputs.put(image((10, 200, 10))) == init       # the same content comes back
    assert store.reconcile().missing_inputs == ()


def test_reconcile_settles_interrupted_input_deletes(store, sink, entry, outputs):
    kept = store.inputs.put(image((10, 200, 10)))
    saved = save_using(sink, entry, seed=1, init=kept)
    orphan = store.inputs.put(image((1, 2, 3)))
    for ref in (kept, orphan):                                   # both stopped half-way through a delete
        (outputs / ref).rename((outputs / ref).with_name(".deleted-" + Path(ref).name))
    report = store.reconcile()
    assert (outputs / kept).is_file() and store.ids_using_input(kept) == [saved.image_id]    # its row is there
    assert inputs_on_disk(outputs) == [Path(kept).name] and report.cleaned == 1


# -- export ------------------------------------------------------------------------------------------
def test_export_zip_carries_the_inputs_once_and_its_requests_resolve_inside(store, shared, outputs, tmp_path):
    init, mask, a, b = shared
    out = store.export_zip([a, b], tmp_path / "sel.zip")
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        meta = {m["id"]: m for m in json.loads(z.read("metadata.json"))}
        assert sorted(n for n in names if n.startswith("inputs/")) == sorted((init, mask))      # once each
        assert meta[a]["inputs"] == [init] and sorted(meta[b]["inputs"]) == sorted((init, mask))
        assert meta[b]["missing_inputs"] == []
        z.extractall(tmp_path / "unpacked")
    unpacked = tmp_path / "unpacked"
    for entry in meta.values():                                  # every ref resolves inside the zip
        req = GenerationRequest.from_dict(entry["request"])
        for ref in req.input_images.values():
            data = (unpacked / ref).read_bytes()
            assert Path(ref).name == f"{hashlib.sha256(data).hexdigest()}.png"
        assert InputStore(unpacked).store_request(req) == req   # nothing left to store: all there
    with GalleryStore(unpacked) as imported:                     # the unpacked zip as an outputs folder
        assert imported.count() == 2
        for record in imported.search().items:
            req = imported.request_of(record.id)
            assert imported.inputs_of([record.id])[record.id] == tuple(sorted(set(req.input_images.values())))
            for where, ref in req.input_images.items():
                assert imported.inputs.open(ref, where).size == (64, 64)


def test_export_lists_an_input_that_is_gone(store, shared, outputs, tmp_path):
    init, mask, a, b = shared
    (outputs / mask).unlink()
    with zipfile.ZipFile(store.export_zip([b], tmp_path / "sel.zip")) as z:
        meta = json.loads(z.read("metadata.json"))[0]
        assert (meta["inputs"], meta["missing_inputs"]) == ([init], [mask])
        assert [n for n in z.namelist() if n.startswith("inputs/")] == [init]


# -- schema ------------------------------------------------------------------------------------------
def test_the_duplicate_check_by_content_uses_an_index(store):
    with store.engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT id FROM images WHERE sha256 = ? ORDER BY id", ("0" * 64,)))
    assert "ix_images_sha256" in plan


def test_upgrade_from_0003_back_fills_the_inputs_of_a_studio_row(tiny_models_dir, tmp_path):
    from alembic import command
    from PIL import Image

    from studio.config import Settings
    from studio.wiring import build_studio

    outputs = tmp_path / "out"
    upload = tmp_path / "upload.png"
    Image.new("RGB", (64, 64), (30, 90, 200)).save(upload)
    studio = build_studio(Settings(models_dir=tiny_models_dir, outputs_dir=outputs, offline=True, device="cpu"))
    result = studio.generate(GenerationRequest("a dog", model_id="tiny-sd15", task=Task.IMG2IMG,
                                               init_image=str(upload), strength=0.5, seed=5, steps=2))
    ref, image_id = result.request.init_image, result.saved[0].image_id
    assert ref.startswith("inputs/") and studio.sink.store.ids_using_input(ref) == [image_id]
    studio.sink.store.close()

    db_path = outputs / "gallery.db"
    engine = gallery_db.make_engine(db_path)                     # the database as revision 0003 had it
    cfg = gallery_db.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    assert gallery_db.current_revision(engine) == "0003"
    engine.dispose()
    with sqlite3.connect(db_path) as old:
        assert old.execute("SELECT name FROM sqlite_master WHERE name = 'image_inputs'").fetchone() is None

    with GalleryStore(outputs) as store:
        assert (store.migration.before, store.migration.after) == ("0003", gallery_db.head_revision())
        assert store.migration.backup is not None and store.migration.backup.is_file()
        assert store.ids_using_input(ref) == [image_id] and store.inputs_of([image_id]) == {image_id: (ref,)}
        assert store.request_of(image_id).init_image == ref
        assert store.delete([image_id]) == 1 and not (outputs / ref).exists()   # the back-filled use counts
