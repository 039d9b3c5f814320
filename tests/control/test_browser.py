"""The ControlNet tab in a real browser (Debian's headless Chromium): upload a control image, see
its map previewed, generate; the row holds the unit and its map. It runs on the demo model once its
union net (models/controlnet/demo-union/) is there, else on tiny-flux and its own net. With
STUDIO_UPDATE_SCREENSHOTS=1 the page is saved as docs/controlnet.png (the README's screenshot)."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import launch_chromium, serving, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not shutil.which("chromium"),
                                                  reason="Debian's chromium is not installed (launch.sh test installs it)")]


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    """(url, studio, prompt): the demo model with its union net when it is there, else tiny-flux."""
    from studio.config import ROOT

    if not (ROOT / "models" / "controlnet" / "demo-union" / "config.json").is_file():
        url, studio = request.getfixturevalue("cn_server")
        yield url, studio, "a cat"
        return
    with serving(ROOT / "models", tmp_path_factory.mktemp("cn-browser")) as served:
        yield served.url, served.studio, "a red circle at the right on a blue background"


def test_upload_preview_the_map_and_generate(server, shapes, tmp_path):
    from playwright.sync_api import sync_playwright

    from studio.config import ROOT

    url, studio, prompt = server
    before = studio.sink.store.count()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="ControlNet").click()
        page.locator("#controlnet-unit0-image input[type=file]").set_input_files(str(shapes["triangle"]))
        preview = page.locator("#controlnet-unit0-preview img")
        assert wait_until(lambda: preview.count() > 0 and preview.first.evaluate("i => i.naturalWidth") > 0, 60)
        # the preview is the canny map at the preprocessor's resolution (512), not the 64 px upload
        assert preview.first.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [512, 512]
        page.locator("#controlnet-prompt textarea").fill(prompt)
        page.locator("#controlnet-seed input").fill("7")
        page.locator("#controlnet-generate").click()
        seed_used = page.locator("#controlnet-seed-used input, #controlnet-seed-used textarea").first
        assert wait_until(lambda: seed_used.input_value() == "7", 90)
        assert wait_until(lambda: page.locator("#controlnet-images img").count() > 0, 30)
        shot = tmp_path / "controlnet.png"
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert studio.sink.store.count() == before + 1
    latest = max(studio.sink.store.search(text=prompt.split()[-1]).items, key=lambda r: r.id)
    unit = latest.controls[0]
    assert (unit.type, unit.preprocessor, unit.resolution) == ("canny", "canny", 512) and unit.map.startswith("inputs/")
    if os.environ.get("STUDIO_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "controlnet.png")


def test_pose_from_keypoints_placed_on_the_canvas(cn_server, tmp_path):
    """A pose unit without a detector: open the pose editor, place the nose by clicking on the
    canvas, use the drawn map as the unit's image (as is), see it previewed."""
    from playwright.sync_api import sync_playwright

    url, studio = cn_server
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="ControlNet").click()
        page.locator("#controlnet-unit0-type input").fill("pose")
        page.keyboard.press("Enter")
        editor = page.get_by_text("Pose from keypoints (no detector needed)")
        assert wait_until(editor.is_visible, 30)
        editor.click()
        canvas = page.locator("#controlnet-unit0-pose-canvas img")
        assert wait_until(lambda: canvas.count() > 0 and canvas.first.evaluate("i => i.naturalWidth") == 512, 60)
        box = canvas.first.bounding_box()
        keypoints = page.locator("#controlnet-unit0-pose-json textarea")
        before = keypoints.input_value()
        page.mouse.click(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.1)   # the nose, up left
        assert wait_until(lambda: keypoints.input_value() != before, 30)
        page.locator("#controlnet-unit0-pose-use").click()
        preview = page.locator("#controlnet-unit0-preview img")
        assert wait_until(lambda: preview.count() > 0 and preview.first.evaluate("i => i.naturalWidth") == 64, 60)
        as_is = page.locator("#controlnet-unit0-as-is input").is_checked()
        nose = keypoints.input_value()
        browser.close()
    import json

    x, y = json.loads(nose)["people"][0]["pose_keypoints_2d"][:2]
    assert as_is and abs(x - 16) <= 2 and abs(y - 6.4) <= 2          # a quarter across, a tenth down, of 64x64
