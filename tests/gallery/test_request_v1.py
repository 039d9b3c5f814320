"""Rows and PNGs written by request version 1 (task "controlnet", one image_prompt, units with
control_type/preprocess) still load, as version 2 requests."""

from __future__ import annotations

import json

from sqlalchemy import text

from studio.gallery import db as gallery_db
from studio.gallery.files import write_png
from studio.gallery.pnginfo import read_image_info
from studio.gallery.store import GalleryStore
from studio.requests import REQUEST_VERSION, ControlUnit, GenerationRequest, ImagePrompt, Task
from tests.gallery.conftest import image

V1 = {"prompt": "a lighthouse", "model_id": "sdxl", "task": "controlnet", "negative_prompt": "", "width": 1024,
      "height": 1024, "steps": 30, "guidance": 6.0, "seed": 5, "batch_size": 1, "batch_count": 1,
      "scheduler": "Euler", "strength": None, "init_image": None, "mask_image": None, "loras": [],
      "controls": [{"control_type": "canny", "image": "/in/edges.png", "scale": 0.8, "start": 0.0, "end": 1.0,
                    "preprocess": False}],
      "image_prompt": {"image": "/in/ref.png", "scale": 0.5}, "extra": {}}
V2 = GenerationRequest("a lighthouse", model_id="sdxl", task=Task.TXT2IMG, width=1024, height=1024, steps=30,
                       guidance=6.0, seed=5, scheduler="Euler",
                       controls=(ControlUnit("canny", "/in/edges.png", scale=0.8, preprocessor="none"),),
                       image_prompts=(ImagePrompt(("/in/ref.png",), scale=0.5),))


def test_version_1_json_migrates():
    assert GenerationRequest.from_dict(V1) == V2 and V2.version == REQUEST_VERSION
    again = dict(V1, controls=[dict(V1["controls"][0], preprocess=True)])
    assert GenerationRequest.from_dict(again).controls[0].preprocessor == "canny"


def test_a_version_1_row_loads(tmp_path):
    outputs = tmp_path / "out"
    outputs.mkdir()
    with GalleryStore(outputs) as store:
        pass
    engine = gallery_db.make_engine(outputs / "gallery.db")
    with engine.begin() as conn:                 # as the studio wrote it before request version 2
        conn.execute(text(
            "INSERT INTO images (id, created_at, path, sha256, task, model_id, prompt, seed, width, height, loras, "
            "controls, image_prompt, request_json, timings) VALUES (7, '2026-11-01 10:00:00', 'old.png', 'x', "
            "'controlnet', 'sdxl', 'a lighthouse', 5, 1024, 1024, '[]', :controls, :prompt, :request, '{}')"),
            {"controls": json.dumps(V1["controls"]), "prompt": json.dumps(V1["image_prompt"]),
             "request": json.dumps(V1)})
    engine.dispose()
    write_png(image(), outputs / "old.png", {})
    with GalleryStore(outputs) as store:
        record = store.get(7)
        assert record.request == V2
        assert record.controls == V2.controls and record.image_prompts == V2.image_prompts
        assert store.request_of(7).task is Task.TXT2IMG


def test_a_version_1_png_reads(tmp_path):
    path = write_png(image(), tmp_path / "old.png", {"studio": json.dumps(V1), "parameters": "a lighthouse"})
    info = read_image_info(path)
    assert info.source == "studio" and info.request == V2
