"""The img2img tab in a real browser (Debian's Chromium), on the demo model: paint a mask, generate,
find the result in the Gallery; "Send to img2img" from txt2img's results.

The first test saves a screenshot of the tab; with STUDIO_UPDATE_SCREENSHOTS=1 it also replaces the
README's (docs/img2img.png)."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from tests.conftest import launch_chromium, search_gallery_and_pick, serving, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not "
                                                                                       "installed (launch.sh test installs it)")]
PROMPT = "a yellow square at the right on a blue background"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from studio.config import ROOT
    from studio.requests import GenerationRequest

    root = tmp_path_factory.mktemp("i2i-browser")
    with serving(ROOT / "models", root / "outputs") as served:
        picture = root / "red-circle.png"
        served.studio.generate(GenerationRequest("a red circle at the left on a blue background",
                                                 seed=11)).images[0].save(picture)
        yield served.url, served.studio, picture


def open_img2img(browser, url: str, sub_tab: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("tab", name="img2img", exact=True).first.click()
    page.locator("#img2img-modes").get_by_role("tab", name=sub_tab, exact=True).click()
    return page


def upload_to_editor(page, selector: str, picture, reopen) -> None:
    """Upload ``picture`` into the image editor at ``selector`` and wait until it is on the canvas
    (the editor's "Upload an image" placeholder gone). Headless Chromium draws the editor with
    software WebGL; on a busy machine an upload is now and then dropped while the editor sets up its
    canvas, and setting the same file again is not seen. So: wait for the editor's canvas first, and
    if the picture doesn't arrive, ``reopen()`` the page and try again, as a user would reload."""
    placeholder = page.locator(selector).get_by_text("Upload an image")
    for attempt in range(3):
        if attempt:
            reopen()
        page.locator(f"{selector} canvas").first.wait_for(state="visible", timeout=30_000)
        time.sleep(1.0)                               # the editor's layers are set up
        page.locator(f"{selector} input[type=file]").first.set_input_files(str(picture))
        if wait_until(lambda: placeholder.count() == 0 or not placeholder.first.is_visible(), timeout=20):
            time.sleep(1.0)                           # the picture is drawn on the canvas
            return
    pytest.fail(f"the picture never reached the editor {selector}, in 3 page loads")


def paint(page, selector: str, rows: int = 9) -> None:
    """Brush strokes over the right half of the picture shown in the editor."""
    canvas = page.locator(f"{selector} canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for i in range(rows):
        y = cy - 60 + i * 15
        page.mouse.move(cx + 10, y)
        page.mouse.down()
        page.mouse.move(cx + 120, y, steps=8)
        page.mouse.up()


def test_paint_a_mask_generate_and_find_it_in_the_gallery(server, tmp_path):
    from playwright.sync_api import sync_playwright

    url, studio, picture = server
    store = studio.sink.store
    before = store.count()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = open_img2img(browser, url, "Inpaint")

        def reopen() -> None:
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_role("tab", name="img2img", exact=True).first.click()
            page.locator("#img2img-modes").get_by_role("tab", name="Inpaint", exact=True).click()

        upload_to_editor(page, "#img2img-paint", picture, reopen)
        paint(page, "#img2img-paint")
        page.locator("#img2img-prompt textarea").fill(PROMPT)
        page.locator("#img2img-strength input[type=number]").fill("1")
        page.locator("#img2img-seed input").fill("5")
        page.locator("#img2img-generate").click()
        seed_used = page.locator("#img2img-seed-used input, #img2img-seed-used textarea").first
        toasts: set[str] = set()

        def done() -> bool:
            toasts.update(page.locator(".toast-body").all_inner_texts())
            return seed_used.input_value() == "5"

        if not wait_until(done, timeout=90):
            page.screenshot(path=str(tmp_path / "failed.png"), full_page=True)
            import faulthandler
            import sys
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            pytest.fail(f"no result; info {page.locator('#img2img-info').inner_text()!r}, toasts "
                        f"{sorted(toasts)!r}, screenshot {tmp_path / 'failed.png'}")
        page.locator("#img2img-images img").first.wait_for(state="visible", timeout=30_000)
        page.evaluate("window.scrollTo(0, 0)")
        time.sleep(0.5)
        shot = tmp_path / "img2img.png"
        page.screenshot(path=str(shot))                  # the painted mask beside the result
        infotext = page.locator("#img2img-infotext textarea").input_value()
        search_gallery_and_pick(page, "yellow square", "· 1 image")
        assert wait_until(lambda: "inpaint" in page.locator("#gallery-facts").inner_text())
        browser.close()
    assert store.count() == before + 1
    row = store.search(text="yellow square").items[0]
    assert row.task == "inpaint" and "Mask blur: 4" in infotext and "Denoising strength: 1" in infotext
    request = row.request
    mask = studio.sink.inputs.open(request.mask_image, "mask_image")
    assert mask.size == (64, 64) and 0 < sum(1 for v in mask.getdata() if v) < 64 * 64     # painted, not all
    if os.environ.get("STUDIO_UPDATE_SCREENSHOTS") == "1":
        from studio.config import ROOT

        shutil.copyfile(shot, ROOT / "docs" / "img2img.png")


def test_send_a_txt2img_result_to_img2img_and_generate_from_it(server):
    from playwright.sync_api import sync_playwright

    url, studio, _ = server
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="domcontentloaded")
        page.locator("#txt2img-prompt textarea").fill("a green triangle in the centre on a white background")
        page.locator("#txt2img-seed input").fill("8")
        page.locator("#txt2img-generate").click()
        seed_used = page.locator("#txt2img-seed-used input, #txt2img-seed-used textarea").first
        assert wait_until(lambda: seed_used.input_value() == "8", timeout=90)
        page.locator("#txt2img-send-img2img").click()
        prompt = page.locator("#img2img-prompt textarea")
        assert wait_until(lambda: prompt.input_value() == "a green triangle in the centre on a white background")
        page.locator("#img2img-image img").first.wait_for(state="visible", timeout=30_000)
        assert page.locator("#img2img-seed input").input_value() == "8"
        assert page.locator("#img2img-width input").input_value() == "0"          # the sent image's size
        page.locator("#img2img-generate").click()
        used = page.locator("#img2img-seed-used input, #img2img-seed-used textarea").first
        assert wait_until(lambda: used.input_value() == "8", timeout=90), page.locator("#img2img-info").inner_text()
        # and on: the img2img result to Inpaint, paint on it, generate
        page.locator("#img2img-send-inpaint").click()
        page.locator("#img2img-paint canvas").first.wait_for(state="visible", timeout=30_000)
        time.sleep(1.0)
        paint(page, "#img2img-paint", rows=4)
        page.locator("#img2img-seed input").fill("9")
        page.locator("#img2img-generate").click()
        assert wait_until(lambda: used.input_value() == "9", timeout=90), page.locator("#img2img-info").inner_text()
        browser.close()
    made = studio.sink.store.search(text="green triangle", sort="newest").items
    assert [row.task for row in made[:2]] == ["inpaint", "img2img"]
    assert made[1].request.init_image.startswith("inputs/")
    assert made[0].request.init_image != made[1].request.init_image        # inpainted the img2img result
