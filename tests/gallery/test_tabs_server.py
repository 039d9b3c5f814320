"""The Gallery and PNG Info tabs on a real server, through gradio_client (short: two calls)."""

from __future__ import annotations

import os
import shutil
import time

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


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed (launch.sh test installs it)")
def test_browser_gallery_search_select_favourite_delete(server, tmp_path):
    from playwright.sync_api import sync_playwright

    from tests.conftest import launch_chromium, open_gallery_and_pick

    from studio.requests import GenerationRequest

    url, studio = server
    store = studio.sink.store
    studio.generate(GenerationRequest("a blue owl", model_id="tiny-random", seed=21, batch_size=2))
    before = store.count()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = open_gallery_and_pick(browser, url, "owl", "page 1 of 1 · 2 images")
        facts = page.locator("#gallery-facts")
        deadline = time.time() + 30
        while "seed" not in facts.inner_text() and time.time() < deadline:
            time.sleep(0.2)
        text = facts.inner_text()
        assert "seed 22" in text or "seed 21" in text
        shown = int(text.split("#", 1)[1].split()[0])
        page.locator("#gallery-favourite").click()
        deadline = time.time() + 20
        while not store.get(shown).favourite and time.time() < deadline:
            time.sleep(0.2)
        assert store.get(shown).favourite
        page.locator("#gallery-selection input[type=checkbox]").first.check()
        page.locator("#gallery-export").click()
        page.locator("#gallery-export-file a, #gallery-export-file .file-name").first.wait_for(timeout=20_000)
        assert ".zip" in page.locator("#gallery-export-file").inner_text()
        page.locator("#gallery-delete").click()
        page.locator("#gallery-confirm").click()
        deadline = time.time() + 20
        while store.count() != before - 1 and time.time() < deadline:
            time.sleep(0.2)
        page.screenshot(path=str(tmp_path / "gallery.png"))
        browser.close()
    assert store.count() == before - 1 and store.get(shown) is None


def test_the_studio_serves_its_images_and_not_its_database(server):
    import httpx

    from studio.requests import GenerationRequest

    url, studio = server
    saved = studio.generate(GenerationRequest("a green owl", model_id="tiny-random", seed=5)).saved[0]
    outputs = studio.sink.store.outputs_dir
    with httpx.Client() as client:
        assert client.get(f"{url}gradio_api/file={saved.path}").content[:8] == b"\x89PNG\r\n\x1a\n"
        for name in ("gallery.db", "gallery.db-wal", "gallery.db-shm"):
            assert (outputs / name).exists()
            assert client.get(f"{url}gradio_api/file={outputs / name}").status_code == 403, name
