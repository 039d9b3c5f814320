"""GalleryStore and GallerySink: files and rows agree, search finds, migrations upgrade."""

from __future__ import annotations

import json
import sqlite3
import threading
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from studio.errors import InvalidRequest
from studio.gallery import db as gallery_db
from studio.gallery.files import write_png
from studio.gallery.infotext import format_infotext
from studio.gallery.sink import GallerySink
from studio.gallery.store import GalleryQuery, GalleryStore, NewImage
from tests.gallery.conftest import image, request


def pngs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.png"))


def save(sink, entry, prompt="a red cat", seeds=(7,), **kw):
    req = request(prompt, seed=seeds[0], batch_size=len(seeds), **kw)
    return sink.save(req, [image((i * 40 % 255, 0, 0)) for i in range(len(seeds))], list(seeds), entry=entry,
                     timings={"generate": 0.5})


# -- migrations -------------------------------------------------------------------------------------
def test_new_database_is_at_head_with_wal_and_foreign_keys(store):
    assert store.migration.before is None and store.migration.after == gallery_db.head_revision()
    assert store.migration.backup is None
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == gallery_db.BUSY_TIMEOUT_MS


@pytest.mark.parametrize("start", ["0001", "0002", "0003", "0004"])
def test_upgrade_from_previous_revision_keeps_rows_backs_up_and_indexes_them(tmp_path, start):
    outputs = tmp_path / "out"
    outputs.mkdir()
    db_path = outputs / "gallery.db"
    engine = gallery_db.make_engine(db_path)
    assert gallery_db.migrate(engine, db_path, start).after == start
    with engine.begin() as conn:        # a row as revision 1 wrote it
        conn.execute(text(
            "INSERT INTO images (id, created_at, path, sha256, task, model_id, prompt, seed, width, height, loras, "
            "controls, timings) VALUES (1, '2026-01-02 03:04:05', 'old.png', 'x', 'txt2img', 'sdxl', "
            "'an old lighthouse', 5, 1024, 1024, '[{\"name\": \"film_grain\", \"weight\": 0.5}]', '[]', '{}')"))
        conn.execute(text("INSERT INTO image_loras (image_id, name, weight) VALUES (1, 'film_grain', 0.5)"))
        if start >= "0002":     # revision 2 writes the LoRA names beside the row (the FTS trigger then sees them)
            conn.execute(text("UPDATE images SET lora_names = 'film_grain'"))
    engine.dispose()
    write_png(image(), outputs / "old.png", {})

    with GalleryStore(outputs) as store:
        assert (store.migration.before, store.migration.after) == (start, gallery_db.head_revision())
        backup = store.migration.backup
        assert backup is not None and backup.exists()
        with sqlite3.connect(backup) as old:
            assert old.execute("SELECT version_num FROM alembic_version").fetchone()[0] == start
            assert old.execute("SELECT prompt FROM images").fetchone()[0] == "an old lighthouse"
        assert store.search(text="lighthouse").total == 1
        assert store.search(text="lora:film_grain").total == 1
        assert store.search(lora="film_grain").items[0].loras[0].weight == 0.5
        store.set_tags(1, ["keeper"])
        assert store.search(text="keeper").total == 1
    with GalleryStore(outputs) as again:          # at head: no second backup
        assert again.migration.backup is None and not again.migration.upgraded


def test_downgrade_to_base_and_up_again(tmp_path):
    db_path = tmp_path / "g.db"
    engine = gallery_db.make_engine(db_path)
    gallery_db.migrate(engine, db_path)
    from alembic import command

    cfg = gallery_db.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert gallery_db.current_revision(engine) is None
    assert gallery_db.migrate(engine, db_path).after == gallery_db.head_revision()


# -- writing --------------------------------------------------------------------------------------
def test_sink_writes_file_and_row_with_full_request(sink, entry, store, outputs):
    saved = save(sink, entry, "a cat, “quoted”: 猫", seeds=(3, 4), negative_prompt="blurry",
                 loras=[("add_detail", 0.8)])
    assert [s.seed for s in saved] == [3, 4] and all(s.image_id for s in saved)
    record = store.get(saved[0].image_id)
    assert Path(record.path).is_file() and Path(record.path).parent.parent.parent == outputs
    assert record.prompt == "a cat, “quoted”: 猫" and record.negative_prompt == "blurry"
    assert record.loras[0].name == "add_detail" and record.infotext == saved[0].infotext
    assert record.request == request("a cat, “quoted”: 猫", seed=3, negative_prompt="blurry", loras=[("add_detail", 0.8)])
    import hashlib

    assert record.sha256 == hashlib.sha256(Path(record.path).read_bytes()).hexdigest()


def test_sink_failure_leaves_no_file_and_no_row(sink, entry, store, outputs, monkeypatch):
    def broken(images):
        raise RuntimeError("disk said no")

    monkeypatch.setattr(store, "add_many", broken)
    with pytest.raises(RuntimeError, match="disk said no"):
        save(sink, entry, seeds=(1, 2, 3))
    assert pngs(outputs) == [] and store.count() == 0
    assert [p for p in outputs.rglob("*") if p.is_file() and p.name.startswith(".tmp-")] == []


def test_sink_failure_while_writing_files_removes_the_batch(sink, entry, store, outputs, monkeypatch):
    from studio.gallery import sink as sink_module

    real, calls = sink_module.write_atomic, []

    def second_fails(data, path, **kw):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("no space left on device")
        return real(data, path, **kw)

    monkeypatch.setattr(sink_module, "write_atomic", second_fails)
    with pytest.raises(OSError):
        save(sink, entry, seeds=(1, 2, 3))
    assert pngs(outputs) == [] and store.count() == 0


def test_eight_threads_writing_at_once_lose_no_row(store, entry, outputs):
    sinks = [GallerySink(store) for _ in range(2)]      # two sinks on one store, as two tabs would
    errors: list[BaseException] = []

    def work(n):
        try:
            for i in range(10):
                save(sinks[n % 2], entry, f"thread {n} image {i}", seeds=(n * 100 + i,))
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count() == 80 and len(pngs(outputs)) == 80
    assert {r.path for r in store.page(1, per_page=100).items} == {str(p) for p in pngs(outputs)}


def test_two_stores_on_one_file_write_at_once(outputs, entry):
    a, b = GalleryStore(outputs), GalleryStore(outputs, reconcile=False)
    try:
        done: list[BaseException] = []

        def work(store, tag):
            try:
                for i in range(15):
                    store.add(NewImage.from_request(request(f"{tag} {i}", seed=i), path=outputs / f"{tag}-{i}.png",
                                                    sha256="0" * 64))
            except BaseException as err:  # noqa: BLE001
                done.append(err)

        threads = [threading.Thread(target=work, args=(s, t)) for s, t in ((a, "a"), (b, "b"))]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert done == [] and a.count() == 30
    finally:
        a.close()
        b.close()


# -- delete and reconcile -------------------------------------------------------------------------
def test_delete_removes_file_and_row(sink, entry, store, outputs):
    saved = save(sink, entry, seeds=(1, 2))
    assert store.delete([saved[0].image_id]) == 1
    assert store.get(saved[0].image_id) is None and not Path(saved[0].path).exists()
    assert store.get(saved[1].image_id) is not None and Path(saved[1].path).exists()
    assert [p for p in outputs.rglob(".deleted-*")] == []


def test_failed_delete_transaction_puts_the_file_back(sink, entry, store, monkeypatch):
    saved = save(sink, entry)[0]

    def boom():
        raise RuntimeError("db gone")

    monkeypatch.setattr(store, "_writing", boom)
    with pytest.raises(RuntimeError):
        store.delete([saved.image_id])
    assert Path(saved.path).exists()
    monkeypatch.undo()
    assert store.get(saved.image_id) is not None


def test_crash_between_file_and_row_is_consistent_after_reconcile(sink, entry, store, outputs, monkeypatch):
    saved = save(sink, entry, "kept", seeds=(1,))[0]
    monkeypatch.setattr(store, "add_many", lambda images: (_ for _ in ()).throw(SystemExit("power cut")))
    from studio.gallery import sink as sink_module

    monkeypatch.setattr(sink_module.Path, "unlink", lambda self, missing_ok=False: None)   # the crash: no cleanup
    with pytest.raises(SystemExit):
        save(sink, entry, "orphan after crash", seeds=(5,))
    monkeypatch.undo()
    assert len(pngs(outputs)) == 2 and store.count() == 1         # a file with no row
    Path(saved.path).unlink()                                    # and a row with no file
    with GalleryStore(outputs) as reopened:                      # start: reconcile
        report = reopened.last_reconcile
        assert (report.imported, report.flagged_missing, report.errors) == (1, 1, ())
        assert reopened.get(saved.image_id).missing
        orphan = reopened.search(text="orphan").items[0]
        assert orphan.seed == 5 and orphan.request == request("orphan after crash", seed=5)
        assert not orphan.missing
        assert reopened.search(missing=False).total == 1
        write_png(image(), Path(saved.path), {})                 # the file comes back
        assert reopened.reconcile().restored == 1 and not reopened.get(saved.image_id).missing


def test_interrupted_delete_is_settled_by_reconcile(sink, entry, store, outputs):
    a, b = save(sink, entry, seeds=(1, 2))
    pa, pb = Path(a.path), Path(b.path)
    pa.rename(pa.with_name(".deleted-" + pa.name))               # stopped before the row went: row wins
    with store._writing() as s:                                   # stopped after the row went: file goes
        s.execute(text("DELETE FROM images WHERE id = :i"), {"i": b.image_id})
    pb.rename(pb.with_name(".deleted-" + pb.name))
    report = store.reconcile()
    assert pa.exists() and not store.get(a.image_id).missing
    assert not list(outputs.rglob(".deleted-*")) and report.cleaned == 1


def test_reimport_files_from_other_studios(store, outputs):
    forge = ("a lighthouse\nNegative prompt: fog\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 9, Size: 1000x1000, "
             "Model: sd15")
    write_png(image(), outputs / "a1111" / "00001.png", {"parameters": forge})
    write_png(image(), outputs / "plain.png", {})
    report = store.reconcile()
    assert report.imported == 2 and report.errors == ()
    rec = store.search(text="lighthouse").items[0]
    assert (rec.source, rec.seed, rec.width, rec.model_id, rec.request) == ("a1111", 9, 1000, "sd15", None)
    with pytest.raises(InvalidRequest, match="imported"):
        store.request_of(rec.id)
    assert store.search(GalleryQuery(text="", sort="oldest")).total == 2


def test_import_image_copies_outside_files_in(store, tmp_path, outputs):
    outside = tmp_path / "downloads" / "x.png"
    req = request("an imported fox", seed=3)
    write_png(image(), outside, {"parameters": format_infotext(req, 3), "studio": req.to_json()})
    image_id = store.import_image(outside, tags=["from-web"])
    rec = store.get(image_id)
    assert Path(rec.path).parent == outputs / "imported" and outside.exists()
    assert rec.request == req and rec.tags == ("from-web",)
    assert store.import_image(rec.path) == image_id          # already in: same row


# -- search ---------------------------------------------------------------------------------------
@pytest.fixture
def filled(store, sink, entry):
    save(sink, entry, "a red cat on a roof", seeds=(1,), loras=[("add_detail", 0.8)])
    save(sink, entry, "a blue dog in the park", seeds=(2,), negative_prompt="blurry", loras=[("film_grain", 1.0)])
    save(sink, entry, "red square, 猫の写真", seeds=(3,), width=128, height=64)
    save(sink, entry, "cats and dogs", seeds=(4,), loras=[("add_detail", 0.3), ("film_grain", 0.2)])
    return store


def prompts(page) -> list[str]:
    return [r.prompt for r in page.items]


def test_fts_search_words_phrases_prefixes_columns_and_not(filled):
    s = filled
    assert prompts(s.search(text="red")) == ["red square, 猫の写真", "a red cat on a roof"]
    assert set(prompts(s.search(text="cat"))) == {"a red cat on a roof", "cats and dogs"}      # prefix
    assert prompts(s.search(text='"red cat"')) == ["a red cat on a roof"]
    assert prompts(s.search(text="red -cat")) == ["red square, 猫の写真"]
    assert prompts(s.search(text="neg:blurry")) == ["a blue dog in the park"]
    assert s.search(text="blurry").total == 1                 # negative prompt is searched too
    assert s.search(text="lora:film").total == 2
    assert s.search(text="add_detail").total == 2             # LoRA names without the column
    assert s.search(text="model:tiny").total == 4
    assert prompts(s.search(text="猫")) == ["red square, 猫の写真"]
    assert prompts(s.search(text="dog cat")) == ["cats and dogs"]


@pytest.mark.parametrize("nasty", ['"', '""', "*", "(", ")", "AND", "OR NOT", "NEAR(a b)", "-", "--x", "a:b:c",
                                   "col:", "prompt:", '"unterminated', "^start", "x*y", "'; DROP TABLE images; --",
                                   "{prompt}: x", "\\", "\x00", "🐱", "a" * 500])
def test_user_input_never_raises(filled, nasty):
    page = filled.search(text=nasty)
    assert page.total >= 0


def test_filters_sort_and_pagination(filled):
    s = filled
    assert s.search(lora="add_detail").total == 2 and s.search(lora="film_grain").total == 2
    assert s.search(lora="add_detail", text="roof").total == 1
    assert s.search(width=128, height=64).total == 1
    assert s.search(model_id="tiny-random", task="txt2img").total == 4 and s.search(task="img2img").total == 0
    first = s.search(sort="newest").items[0]
    s.set_favourite(first.id)
    assert [r.id for r in s.search(favourite=True).items] == [first.id]
    assert s.search(favourite=False).total == 3
    now = datetime.now(timezone.utc)
    assert s.search(date_from=now - timedelta(hours=1), date_to=now + timedelta(hours=1)).total == 4
    assert s.search(date_to=now.date() - timedelta(days=1)).total == 0
    assert s.search(date_from=now.date(), date_to=now.date()).total == 4      # a date is a whole day
    assert [r.seed for r in s.search(sort="seed").items] == [1, 2, 3, 4]
    assert [r.seed for r in s.search(sort="oldest").items] == [1, 2, 3, 4]
    assert [r.seed for r in s.search(sort="newest").items] == [4, 3, 2, 1]
    assert s.search(text="red cat", sort="relevance").items[0].prompt == "a red cat on a roof"
    pages = [s.page(n, per_page=3) for n in (1, 2, 3)]
    assert [len(p.items) for p in pages] == [3, 1, 0] and pages[0].pages == 2 and pages[0].total == 4
    assert len({r.id for p in pages for r in p.items}) == 4
    assert s.lora_names() == ["add_detail", "film_grain"] and s.model_ids() == ["tiny-random"]
    with pytest.raises(InvalidRequest):
        GalleryQuery(sort="sideways")


def test_tags_are_searchable_and_filterable(filled):
    rec = filled.search(text="blue").items[0]
    assert filled.add_tags(rec.id, ["best of", "Sky"]) == ("Sky", "best-of")
    assert filled.search(text="tag:best").total == 1 and filled.search(tag="best of").total == 1
    assert filled.remove_tag(rec.id, "Sky") == ("best-of",)
    assert filled.search(text="sky").total == 0 and filled.tag_names() == ["best-of"]


def test_export_zip_has_images_and_metadata(filled, tmp_path):
    ids = [r.id for r in filled.search(text="red").items]
    out = filled.export_zip(ids, tmp_path / "exp" / "sel.zip")
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        meta = json.loads(z.read("metadata.json"))
        assert len([n for n in names if n.endswith(".png")]) == 2
        assert len([n for n in names if n.endswith(".txt")]) == 2
        assert {m["id"] for m in meta} == set(ids) and all(m["request"]["seed"] == m["seed"] for m in meta)
        assert z.read(meta[0]["file"]) == Path(filled.get(meta[0]["id"]).path).read_bytes()


def test_reconcile_lists_only_changed_folders_and_still_sees_every_change(outputs, entry):
    import os
    import time as _time

    old = outputs / "txt2img" / "2025-01-01"
    with GalleryStore(outputs) as store:
        sink = GallerySink(store)
        a, b = save(sink, entry, seeds=(1, 2))
        for p in (Path(a.path), Path(b.path)):          # move both into an old, quiet folder
            old.mkdir(parents=True, exist_ok=True)
            os.replace(p, old / p.name)
        with store._writing() as s:
            s.execute(text("UPDATE images SET path = replace(path, :new, :old)"),
                      {"new": Path(a.path).parent.relative_to(outputs).as_posix(), "old": "txt2img/2025-01-01"})
        store.reconcile(full=True)
        past = _time.time() - 3600
        for folder in (old, old.parent, outputs):
            os.utime(folder, (past, past))
        store.reconcile()                               # records the quiet mtimes
        quiet = store.reconcile()
        assert quiet.folders_listed < 3 and (quiet.flagged_missing, quiet.imported) == (0, 0)
        (old / Path(a.path).name).unlink()              # a change in the quiet folder is seen
        write_png(image(), old / "dropped-in.png", {})
        report = store.reconcile()
        assert (report.flagged_missing, report.imported) == (1, 1)
        assert store.get(a.image_id).missing and not store.get(b.image_id).missing
        shutil_rmtree(old)                              # the whole folder goes
        report = store.reconcile()
        assert report.flagged_missing == 2 and store.search(missing=True).total == 3


def shutil_rmtree(path):
    import shutil

    shutil.rmtree(path)


def test_search_pages_agree_when_walking_the_date_index(filled, monkeypatch):
    from studio.gallery import search as planning

    expected = [[r.id for r in filled.search(text="a", sort=s, per_page=2, page=p).items]
                for s in ("newest", "oldest") for p in (1, 2)]
    monkeypatch.setattr(planning, "SCAN_ABOVE", 0)
    assert [[r.id for r in filled.search(text="a", sort=s, per_page=2, page=p).items]
            for s in ("newest", "oldest") for p in (1, 2)] == expected
    assert filled.search(lora="film_grain", text="dog").total == 2


def test_reimport_replaces_the_row_and_delete_never_touches_files_outside_outputs(store, sink, entry, tmp_path):
    saved = save(sink, entry, "first words", seeds=(1,))[0]
    req = request("second words", seed=1)
    write_png(image(), Path(saved.path), {"studio": req.to_json()})
    new_id = store.reimport(saved.path)
    assert store.count() == 1 and store.get(new_id).prompt == "second words"
    outside = write_png(image(), tmp_path / "elsewhere" / "x.png", {"studio": req.to_json()})
    outside_id = store.reimport(outside)
    assert store.get(outside_id).path == str(outside)
    assert store.delete([outside_id]) == 1 and outside.exists()


def test_head_revision_read_from_the_files_agrees_with_alembic():
    from alembic.script import ScriptDirectory

    assert gallery_db.head_revision() == ScriptDirectory.from_config(gallery_db.alembic_config()).get_current_head()
