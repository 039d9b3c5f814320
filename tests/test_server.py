"""A real studio server on 127.0.0.1, driven by gradio_client and by headless Chromium."""

from __future__ import annotations

import shutil
import time

import pytest
from PIL import Image

from tests.conftest import launch_chromium, open_gallery_and_pick, serving

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tiny_models_dir, tmp_path_factory):
    with serving(tiny_models_dir, tmp_path_factory.mktemp("server-outputs"), default_model="tiny-flux") as served:
        yield served.url, served.settings


def test_txt2img_endpoint_with_only_a_prompt(server):
    from gradio_client import Client

    url, settings = server
    client = Client(url, verbose=False)
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/txt2img"]
    names = [p["parameter_name"] for p in api["parameters"]]
    assert names == ["prompt", "negative_prompt", "model", "width", "height", "steps", "guidance", "seed",
                     "batch_count", "batch_size", "loras"]
    assert all(p["parameter_has_default"] for p in api["parameters"][1:])
    gallery, seed, infotext, ids, info = client.predict("a red circle", api_name="/txt2img")
    assert len(gallery) == 1 and int(seed) >= 0
    with Image.open(gallery[0]["image"]) as im:
        assert im.size == (64, 64)                       # the native image, not the enlarged view
        assert f"Seed: {int(seed)}" in im.info["parameters"]
    assert f"seed {int(seed)}" in info and f"Seed: {int(seed)}" in infotext and len(ids) == 1
    returns = [r["label"] for r in api["returns"]]
    assert returns == ["Images", "Seed used", "Infotext", "Image ids", "Status"]


def test_fixed_seed_and_batch_through_the_api(server):
    from gradio_client import Client

    client = Client(server[0], verbose=False)
    gallery, seed, _, ids, _ = client.predict("a cat", seed=123, batch_size=2, api_name="/txt2img")
    assert seed == "123" and [g["caption"] for g in gallery] == ["seed 123", "seed 124"]


def test_invalid_request_is_a_clear_error(server):
    from gradio_client import Client

    client = Client(server[0], verbose=False)
    with pytest.raises(Exception, match="width: must be a multiple of 16, got 70"):
        client.predict("x", width=70, api_name="/txt2img")
    with pytest.raises(Exception, match="steps: must be within 1..200, got 0"):   # named, never clamped
        client.predict("x", steps=0, api_name="/txt2img")
    with pytest.raises(Exception, match="width: must be within 16..4096, got 100000"):
        client.predict("x", width=100000, api_name="/txt2img")
    with pytest.raises(Exception, match="batch_count: must be within 1..100, got 200"):
        client.predict("x", batch_count=200, api_name="/txt2img")
    with pytest.raises(Exception, match="unknown model"):
        client.predict("x", model="tiny-sd15-nope", api_name="/txt2img")


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed (launch.sh test installs it)")
def test_browser_click_generate_shows_an_image(server, tmp_path):
    from playwright.sync_api import sync_playwright

    url, settings = server
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url, wait_until="domcontentloaded")
        page.locator("#txt2img-prompt textarea").fill("a green square")
        page.locator("#txt2img-generate").click()
        img = page.locator("#txt2img-images img").first
        img.wait_for(state="visible", timeout=60_000)
        deadline = time.time() + 30
        while "seed" not in page.locator("#txt2img-info").inner_text() and time.time() < deadline:
            time.sleep(0.2)
        info = page.locator("#txt2img-info").inner_text()
        box = img.bounding_box()
        page.screenshot(path=str(tmp_path / "txt2img.png"))
        browser.close()
    assert "1 image(s)" in info
    assert box["width"] >= 128, "a 64 px image is shown enlarged"
    files = list(settings.outputs_dir.rglob("*.png"))
    assert any(Image.open(f).size == (64, 64) for f in files)


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed (launch.sh test installs it)")
def test_browser_send_to_txt2img_keeps_the_image_parameters(server):
    """Gallery -> Send to txt2img fills prompt, seed AND steps (a model change must not reset them)."""
    from gradio_client import Client
    from playwright.sync_api import sync_playwright

    url, _ = server
    Client(url, verbose=False).predict("a giraffe", model="tiny-sd15", seed=77, steps=3, api_name="/txt2img")
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = open_gallery_and_pick(browser, url, "giraffe", "· 1 image")
        deadline = time.time() + 30
        while "seed" not in page.locator("#gallery-facts").inner_text() and time.time() < deadline:
            time.sleep(0.2)
        page.locator("#gallery-send").click()
        prompt = page.locator("#txt2img-prompt textarea")
        deadline = time.time() + 30
        while prompt.input_value() != "a giraffe" and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)   # let any (wrong) model-change handler run
        steps = page.locator("#txt2img-steps input").input_value()
        seed = page.locator("#txt2img-seed input").input_value()
        filled = prompt.input_value()
        browser.close()
    assert (filled, steps, seed) == ("a giraffe", "3", "77")
