"""What the Gallery and PNG Info tabs do, without Gradio."""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from studio.errors import InvalidRequest
from studio.gallery import browse
from studio.requests import GenerationRequest
from studio.gallery.files import write_png
from tests.gallery.conftest import image, request


@pytest.fixture
def three(store, sink, entry):
    for i, prompt in enumerate(["a red cat", "a blue dog", "a green owl"]):
        sink.save(request(prompt, seed=i, loras=[("add_detail", 0.5)] if i == 1 else ()), [image()], [i],
                  entry=entry, timings={"generate": 0.25})
    return store


def test_query_from_form_values():
    q = browse.build_query("cat", "", "", "", True, "2026-01-01", "2026-01-31", "832x1216", False, "oldest", 2)
    assert (q.text, q.model_id, q.lora, q.favourite, q.width, q.height, q.sort, q.page, q.missing) == \
        ("cat", None, None, True, 832, 1216, "oldest", 2, False)
    assert q.date_from.isoformat() == "2026-01-01"
    with pytest.raises(InvalidRequest, match="date"):
        browse.build_query(date_from="yesterday")
    with pytest.raises(InvalidRequest, match="WIDTHxHEIGHT"):
        browse.build_query(size="big")


def test_grid_labels_selection_and_details(three):
    page = three.search(browse.build_query(per_page=2))
    assert [c for _, c in browse.grid(page)] == ["#3 · a green owl", "#2 · a blue dog"]
    assert browse.grid_ids(page) == [3, 2]
    assert browse.page_label(page) == "page 1 of 2 · 3 images"
    assert browse.selection_choices(page)[0] == ("#3 · a green owl", 3)
    record = three.get(2)
    text = browse.summary(record)
    assert "seed **1**" in text and "add_detail (0.5)" in text and "generate 0.25 s" in text
    assert browse.detail_json(record)["request"]["seed"] == 1
    Path(three.get(3).path).unlink()
    three.reconcile()
    assert [c for _, c in browse.grid(three.search(browse.build_query(include_missing=True)))] == \
        ["#2 · a blue dog", "#1 · a red cat"]


def test_include_missing_files_shows_them_so_they_can_be_selected_and_deleted(three, tmp_path):
    placeholder = browse.missing_placeholder(tmp_path / "ui")
    assert browse.missing_placeholder(tmp_path / "ui") == placeholder          # written once
    with Image.open(placeholder) as im:
        assert im.size == (256, 256)
    Path(three.get(2).path).unlink()
    three.reconcile()
    hidden = three.search(browse.build_query(include_missing=False))
    assert browse.grid_ids(hidden, placeholder) == [3, 1]
    shown = three.search(browse.build_query(include_missing=True))
    cells = browse.grid(shown, placeholder)
    assert browse.grid_ids(shown, placeholder) == [3, 2, 1]
    assert cells[1] == (str(placeholder), "#2 · a blue dog · file missing")
    assert cells[0][0] == three.get(3).path
    clicked = browse.grid_ids(shown, placeholder)[1]                   # a click on the placeholder...
    assert three.delete([clicked]) == 1 and three.get(2) is None        # ...selects the row to delete
    assert browse.grid_ids(three.search(browse.build_query(include_missing=True)), placeholder) == [3, 1]


def test_send_to_uses_the_exact_request_or_adapts_an_import(three, outputs):
    from studio import forms

    exact = browse.form_fields(three.get(1))
    assert GenerationRequest(**exact) == request("a red cat", seed=0)
    write_png(image(), outputs / "x.png", {"parameters": "a fox\nSteps: 500, Sampler: Euler, CFG scale: 99, "
                                                         "Seed: 5, Size: 1000x1000, Model: sd15, "
                                                         "Lora hashes: \"gone: abc\""})
    three.reconcile()
    rec = three.search(text="fox").items[0]
    adapted = forms.adapt(browse.form_fields(rec), models=["demo"], loras=[])
    assert adapted.fields["width"] == adapted.fields["height"] == 992 and adapted.fields["seed"] == 5
    assert "steps" not in adapted.fields and "guidance" not in adapted.fields and "model_id" not in adapted.fields
    text = "; ".join(adapted.problems)
    for named in ("width 1000 became 992", "steps: must be within 1..200, got 500", "guidance", "model 'sd15'"):
        assert named in text, (named, text)


def test_export_selection(three, tmp_path):
    out = browse.export(three, [1, 2], tmp_path)
    with zipfile.ZipFile(out) as z:
        assert len([n for n in z.namelist() if n.endswith(".png")]) == 2
    with pytest.raises(InvalidRequest):
        browse.export(three, [], tmp_path)


def test_exports_of_two_sessions_never_share_a_file_and_old_ones_go(three, tmp_path):
    first, second = browse.export(three, [1, 2], tmp_path), browse.export(three, [2, 3], tmp_path)
    assert first.parent != second.parent and first.parent.parent == tmp_path   # each in its own folder
    assert len(first.parent.name) > len(browse.EXPORT_PREFIX) + 6                 # a random, unguessable name
    with zipfile.ZipFile(first) as z:
        assert any(n.startswith("images/000001-") for n in z.namelist())        # the first one is intact
    old = time.time() - browse.EXPORT_KEEP_SECONDS - 10
    os.utime(first.parent, (old, old))
    browse.export(three, [3], tmp_path)
    assert not first.parent.exists() and second.exists()


def test_png_info_views(tmp_path):
    assert "Drop an image" in browse.png_info_summary(None) and browse.png_info_json(None) == {}
    req = request("a red cat")
    path = write_png(image(), tmp_path / "a.png", {"studio": req.to_json(), "parameters": "x"})
    info = browse.png_info(path)
    assert "this studio" in browse.png_info_summary(info)
    assert browse.png_info_json(info)["request"]["prompt"] == "a red cat"


def test_store_of(studio_like=None):
    from types import SimpleNamespace

    assert browse.store_of(SimpleNamespace(sink=object())) is None
