"""The Gallery and PNG Info tabs on a real server, through gradio_client (short: two calls)."""

from __future__ import annotations

import os

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    from studio.config import Settings
    from studio.ui.app import build_app, launch_kwargs
    from studio.wiring import build_studio

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    root = tmp_path_factory.mktemp("tabs")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", offline=True, device="cpu",
                        port=free_port(), default_model="tiny-random")
    studio = build_studio(settings)
    demo = build_app(studio, settings)
    demo.launch(**launch_kwargs(settings), prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{settings.port}/", studio
    demo.close()


def test_png_info_and_regenerate_endpoints(server):
    from gradio_client import Client, handle_file

    from studio.requests import GenerationRequest

    url, studio = server
    result = studio.generate(GenerationRequest("a red cat", model_id="tiny-random", seed=3))
    saved = result.saved[0]
    client = Client(url, verbose=False)
    _preview, facts, infotext, details = client.predict(handle_file(saved.path), api_name="/png_info")
    assert "this studio" in facts and "Seed: 3" in infotext
    out = client.predict(saved.image_id, api_name="/gallery_regenerate")
    assert studio.sink.store.count() == 2
    assert "value" in str(out)
    store = studio.sink.store
    newest = store.search(sort="newest").items[0]
    assert newest.id != saved.image_id and newest.request == store.get(saved.image_id).request
    import numpy as np
    from PIL import Image

    with Image.open(newest.path) as a, Image.open(saved.path) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))          # re-generate: the same pixels
