"""The IP-Adapter tab in a real browser (Debian's headless Chromium): upload a reference, generate;
the row holds the reference and the adapter; then "Send to IP-Adapter" from the Gallery and from
PNG Info puts a picture in the references. It runs on the demo model once its adapter (models/ip_adapter/demo/) is
there, else on tiny-flux and its local adapter. With STUDIO_UPDATE_SCREENSHOTS=1 the page is saved
as docs/ip_adapter.png (the README's screenshot)."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import launch_chromium, search_gallery_and_pick, serving, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not shutil.which("chromium"),
                                                  reason="Debian's chromium is not installed (launch.sh test installs it)")]


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    """(url, studio, prompt, reference): the demo model with its adapter when it is there, else tiny-flux."""
    from PIL import Image

    from studio.config import ROOT

    reference = tmp_path_factory.mktemp("ip-browser-ref") / "reference.png"
    if not (ROOT / "models" / "ip_adapter" / "demo" / "image_encoder" / "config.json").is_file():
        Image.new("RGB", (64, 64), (220, 40, 30)).save(reference)
        url, studio = request.getfixturevalue("ip_server")
        yield url, studio, "a browsercat", reference
        return
    from studio.demo.dataset import POSITION_PHRASES, POSITIONS, ShapeSpec, render

    cx, cy = POSITIONS["top"]
    Image.fromarray(render(ShapeSpec("square", "red", "white", "top", cx, cy, 15.0,
                                     POSITION_PHRASES["top"][0]))).save(reference)
    with serving(ROOT / "models", tmp_path_factory.mktemp("ip-browser")) as served:
        yield served.url, served.studio, "a circle at the left on a blue background", reference


def test_upload_a_reference_generate_and_send_one_back(server, tmp_path):
    from playwright.sync_api import sync_playwright

    from studio.config import ROOT

    url, studio, prompt, reference = server
    before = studio.sink.store.count()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="IP-Adapter").click()
        page.locator("#ip_adapter-references input[type=file]").first.set_input_files(str(reference))
        refs = page.locator("#ip_adapter-references img")
        assert wait_until(lambda: refs.count() > 0, 30)
        # FLUX: XLabs' recipe (true CFG 4), unless the model's studio.json says otherwise (the demo: 1, off)
        want = str(studio.ip_adapter_defaults(studio.registry.default_id())["true_cfg_scale"]).removesuffix(".0")
        assert page.locator("#ip_adapter-true-cfg input").first.input_value() == want
        page.locator("#ip_adapter-prompt textarea").fill(prompt)
        page.locator("#ip_adapter-seed input").fill("7")
        page.locator("#ip_adapter-generate").click()
        seed_used = page.locator("#ip_adapter-seed-used input, #ip_adapter-seed-used textarea").first
        assert wait_until(lambda: seed_used.input_value() == "7", 90)
        assert wait_until(lambda: page.locator("#ip_adapter-images img").count() > 0, 30)
        shot = tmp_path / "ip_adapter.png"
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(shot), full_page=True)
        latest = max(studio.sink.store.search().items, key=lambda r: r.id)
        # the Gallery: pick the new image, send it to the IP-Adapter tab, where it is the reference now
        search_gallery_and_pick(page, prompt.split()[-1], "1 image")
        page.locator("#gallery-send-ip-adapter").click()
        name = os.path.basename(latest.path)
        assert wait_until(lambda: refs.count() == 1 and name in (refs.first.get_attribute("src") or ""), 30), \
            refs.first.get_attribute("src")
        # PNG Info: any picture dropped there becomes the reference the same way
        page.get_by_role("tab", name="PNG Info").click()
        page.locator("#pnginfo-upload input[type=file]").first.set_input_files(str(reference))
        assert wait_until(lambda: page.locator("#pnginfo-preview img").count() > 0, 30)
        page.locator("#pnginfo-send-ip-adapter").click()
        assert wait_until(lambda: refs.count() == 1 and "reference" in (refs.first.get_attribute("src") or ""), 30), \
            refs.first.get_attribute("src")
        browser.close()
    assert studio.sink.store.count() == before + 1
    (ip,) = latest.image_prompts
    assert ip.images[0].startswith("inputs/") and ip.adapter and ip.scale == 0.6
    if os.environ.get("STUDIO_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "ip_adapter.png")
