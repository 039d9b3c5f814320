"""Importing: a file's content is in the gallery once, however often it is imported."""

from __future__ import annotations

import shutil
from pathlib import Path

from studio.gallery.files import write_png
from studio.gallery.imports import import_image
from tests.gallery.conftest import image, request


def _png(path: Path, prompt: str = "an imported fox") -> Path:
    return write_png(image(), path, {"studio": request(prompt, seed=3).to_json()})


def test_importing_the_same_content_twice_keeps_one_row_and_one_copy(store, outputs, tmp_path):
    first = import_image(store, _png(tmp_path / "downloads" / "fox.png"))
    assert not first.already and first.message == f"In the gallery as #{first.image_id}."
    again = shutil.copyfile(tmp_path / "downloads" / "fox.png", tmp_path / "elsewhere-fox-copy.png")
    second = import_image(store, again, tags=["twice"])
    assert second.already and second.image_id == first.image_id
    assert f"already in the gallery as #{first.image_id}" in second.message
    assert "elsewhere-fox-copy.png" in second.message
    assert store.count() == 1 and [p.name for p in (outputs / "imported").iterdir()] == ["fox.png"]
    assert store.get(first.image_id).tags == ("twice",)
    assert store.import_image(again) == first.image_id              # the store's API says the same


def test_content_made_by_the_studio_is_found_too(store, sink, entry, tmp_path):
    saved = sink.save(request("a red cat"), [image()], [7], entry=entry, timings={})[0]
    copy = shutil.copyfile(saved.path, tmp_path / "sent-to-me.png")
    result = import_image(store, copy)
    assert result.already and result.image_id == saved.image_id and store.count() == 1


def test_different_content_with_the_same_name_is_a_second_image(store, outputs, tmp_path):
    a = import_image(store, _png(tmp_path / "a" / "x.png", "first"))
    b = import_image(store, _png(tmp_path / "b" / "x.png", "second"))
    assert not b.already and a.image_id != b.image_id
    assert sorted(p.name for p in (outputs / "imported").iterdir()) == ["x-1.png", "x.png"]


def test_a_row_whose_file_is_gone_does_not_count_as_present(store, tmp_path):
    source = _png(tmp_path / "fox.png")
    first = import_image(store, source)
    Path(store.get(first.image_id).path).unlink()
    store.reconcile()
    again = import_image(store, source)
    assert not again.already and again.image_id != first.image_id and Path(store.get(again.image_id).path).is_file()
