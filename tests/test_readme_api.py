"""The README's API examples run as written, against a real studio on the demo model; every
named endpoint has plain parameter names and labeled returns."""

from __future__ import annotations

import re

import pytest

from tests.conftest import readme_python, run_readme_python, serving

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from studio.config import ROOT

    with serving(ROOT / "models", tmp_path_factory.mktemp("readme-outputs")) as served:
        yield served.url


def test_the_readme_api_examples_run_as_written(server, tmp_path, monkeypatch):
    examples = readme_python("api examples")
    assert len(examples) >= 4
    monkeypatch.chdir(tmp_path)                # files the examples write (mask.png) land in a folder of their own
    scope: dict = {}
    for code in examples:                      # one session, in order, as a reader would paste them
        run_readme_python(code, server, scope)
    assert len(scope["image_ids"]) == 2 and scope["seed"] == "42"
    assert "Seed: 42" in scope["infotext"] and scope["ids"] and scope["new_ids"]
    assert "Denoising strength: 0.6" in scope["redrawn_info"] and len(scope["redrawn_ids"]) == 1
    assert "Task: inpaint, Mask blur: 4" in scope["inpainted_info"] and "Size: 96x64" in scope["extended_info"]
    assert isinstance(scope["library"], list) and "Seed: 3" in scope["mixed_infotext"]
    assert all(f"<lora:{x['name']}:1>" in scope["mixed_infotext"] for x in scope["library"] if x["fits"])
    assert "Seed:" in scope["text"] and scope["source"] == "studio" and scope["request"]["seed"] >= 0
    assert scope["counts"]["duplicates"] >= 1 and scope["counts"]["imported"] == 0


def test_every_endpoint_has_plain_names_and_labeled_returns(server):
    from gradio_client import Client

    api = Client(server, verbose=False).view_api(print_info=False, return_format="dict")
    named = api["named_endpoints"]
    assert {"/txt2img", "/img2img", "/inpaint", "/outpaint", "/gallery_search", "/gallery_regenerate",
            "/gallery_import", "/png_info", "/load_model", "/unload_model", "/free_models", "/download_model",
            "/loras"} <= set(named)
    for name, endpoint in named.items():
        for parameter in endpoint["parameters"]:
            assert re.fullmatch(r"[a-z][a-z_]+", parameter["parameter_name"]), (name, parameter["parameter_name"])
        for ret in endpoint["returns"]:
            assert ret["label"] and not ret["label"].startswith("value_"), (name, ret)
    required = {name: [p["parameter_name"] for p in ep["parameters"] if not p["parameter_has_default"]]
                for name, ep in named.items()}
    assert required["/txt2img"] == ["prompt"] and required["/gallery_search"] == []
    assert required["/img2img"] == required["/outpaint"] == ["prompt", "image"]
    assert required["/inpaint"] == ["prompt", "image", "mask"]
    assert required["/gallery_import"] == ["folder"]
