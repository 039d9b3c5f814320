"""The Gallery and PNG Info tabs on a real server, through gradio_client (short: two calls)."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.conftest import serving

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("tabs")
    with serving(root / "models", root / "outputs", default_model="tiny-random") as served:
        yield served.url, served.studio


def test_png_info_and_regenerate_endpoints(server):
    from gradio_client import Client, handle_file

    from studio.requests import GenerationRequest

    url, studio = server
    result = studio.generate(GenerationRequest("a red cat", model_id="tiny-random", seed=3))
    saved = result.saved[0]
    client = Client(url, verbose=False)
    _preview, facts, infotext, source, request, parameters, problem = client.predict(handle_file(saved.path),
                                                                                     api_name="/png_info")
    assert "this studio" in facts and "Seed: 3" in infotext
    assert (source, request["seed"], parameters["prompt"], problem) == ("studio", 3, "a red cat", "")
    images, ids = client.predict(saved.image_id, api_name="/gallery_regenerate")
    assert studio.sink.store.count() == 2
    assert len(images) == 1 and ids == [saved.image_id + 1]
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
        href = page.locator("#gallery-export-file a").first.get_attribute("href")
        download = page.request.get(href if "://" in href else url.rstrip("/") + href)
        assert download.status == 200 and download.body()[:2] == b"PK"       # this session's zip is served
        page.locator("#gallery-delete").click()
        page.locator("#gallery-confirm").click()
        deadline = time.time() + 20
        while store.count() != before - 1 and time.time() < deadline:
            time.sleep(0.2)
        page.screenshot(path=str(tmp_path / "gallery.png"))
        browser.close()
    assert store.count() == before - 1 and store.get(shown) is None


def test_png_info_labels_source_request_parameters_and_problem(server, tmp_path):
    import json
    from pathlib import Path

    from gradio_client import Client, handle_file
    from PIL import Image, PngImagePlugin

    chunks = json.loads((Path(__file__).parent / "fixtures" / "fooocus_2_5_scheme_fooocus.json").read_text())["chunks"]
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGB", (64, 48)).save(tmp_path / "fox.png", pnginfo=info)
    client = Client(server[0], verbose=False)
    _preview, facts, infotext, source, request, parameters, problem = client.predict(
        image=handle_file(tmp_path / "fox.png"), api_name="/png_info")
    assert (source, request["seed"], request["loras"][1]["name"]) == ("fooocus", 2**63 - 1,
                                                                      "SDXL_FILM_PHOTOGRAPHY_STYLE_V1")
    assert parameters["styles"].startswith("['Fooocus V2'") and problem == "" and "Fooocus" in facts
    Image.new("RGB", (60, 40)).save(tmp_path / "plain.png")
    _preview, facts, infotext, source, request, parameters, problem = client.predict(
        image=handle_file(tmp_path / "plain.png"), api_name="/png_info")
    assert (source, request, problem) == ("none", None, "no generation parameters in this image")


def test_gallery_import_endpoint_counts_and_the_source_filter_finds(server, tmp_path):
    import json
    from pathlib import Path

    from gradio_client import Client
    from PIL import Image, PngImagePlugin

    fixtures = Path(__file__).parent / "fixtures"
    folder = tmp_path / "from-swarm-and-novelai"
    for name in ("swarmui_loras", "novelai_v4_5"):
        info = PngImagePlugin.PngInfo()
        for key, value in json.loads((fixtures / f"{name}.json").read_text())["chunks"].items():
            info.add_text(key, value) if value.isascii() else info.add_itxt(key, value)
        (folder / "sub").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (len(name), 0, 0)).save(folder / "sub" / f"{name}.png", pnginfo=info)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut")
    client = Client(server[0], verbose=False)
    counts, status = client.predict(folder=str(folder), api_name="/gallery_import")
    assert (counts["found"], counts["imported"], counts["failed"], counts["sources"]) == \
        (3, 2, 1, {"novelai": 1, "swarmui": 1})
    assert "broken.png" in counts["problems"][0] and "2 of 3 imported" in status
    again, _ = client.predict(folder=str(folder), link=False, include_plain=True, api_name="/gallery_import")
    assert (again["imported"], again["duplicates"]) == (0, 2)
    thumbnails, ids, infotexts, page = client.predict(source="swarmui", api_name="/gallery_search")
    assert len(ids) == 1 and "1 image" in page and "knight" in infotexts[0]
    with pytest.raises(Exception, match="does not exist"):
        client.predict(folder=str(tmp_path / "nowhere"), api_name="/gallery_import")


def test_a_public_studio_offers_no_import_by_path_unless_allowed(tmp_path):
    from studio.config import Settings
    from studio.ui.app import build_app
    from studio.wiring import build_studio

    def api_names(**flags):
        settings = Settings(models_dir=tmp_path / "models", outputs_dir=tmp_path / "outputs", offline=True,
                            device="cpu", **flags)
        demo = build_app(build_studio(settings), settings)
        return {getattr(fn, "api_name", None) for fn in demo.fns.values()}

    assert "gallery_import" in api_names()
    assert "gallery_import" not in api_names(host="0.0.0.0")
    assert "gallery_import" not in api_names(share=True)
    assert "gallery_import" in api_names(host="0.0.0.0", allow_import_paths=True)


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


def test_user_errors_print_no_traceback_and_bugs_still_do(server, tmp_path, capfd, monkeypatch):
    from gradio_client import Client, handle_file

    from studio.gallery import browse

    url, _ = server
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    client = Client(url, verbose=False)
    capfd.readouterr()
    with pytest.raises(Exception, match="notes.png") as caught:
        client.predict(handle_file(notes), api_name="/png_info")
    assert "is not an image" in str(caught.value) and "/gradio/" not in str(caught.value)
    assert "This is a bug" not in str(caught.value)
    time.sleep(0.5)
    assert "Traceback" not in capfd.readouterr().err

    def broken(path):
        raise RuntimeError("a real bug")

    monkeypatch.setattr(browse, "png_info", broken)
    with pytest.raises(Exception, match="This is a bug in the studio"):
        client.predict(handle_file(notes), api_name="/png_info")
    time.sleep(0.5)
    err = capfd.readouterr().err
    assert "Traceback" in err and "a real bug" in err


# the size at which a picture is on screen: its box, less what object-fit crops or leaves empty
SHOWN = """(selector) => Array.from(document.querySelectorAll(selector)).map(img => {
  const box = img.getBoundingClientRect(), fit = getComputedStyle(img).objectFit;
  const nw = img.naturalWidth, nh = img.naturalHeight;
  let s = {contain: Math.min(box.width / nw, box.height / nh), cover: Math.max(box.width / nw, box.height / nh),
           none: 1, 'scale-down': Math.min(1, box.width / nw, box.height / nh)}[fit];
  let w = fit === 'fill' ? box.width : nw * s, h = fit === 'fill' ? box.height : nh * s;
  return {natural: [nw, nh], visible: [Math.min(w, box.width), Math.min(h, box.height)],
          rendering: getComputedStyle(img).imageRendering};
})"""


def _shown(page, selector: str) -> dict:
    from tests.conftest import wait_until

    assert wait_until(lambda: any(s["natural"][0] for s in page.evaluate(SHOWN, selector)), 60), selector
    return next(s for s in page.evaluate(SHOWN, selector) if s["natural"][0])


def _assert_enlarged_whole(shown: dict) -> None:
    (nw, nh), (w, h) = shown["natural"], shown["visible"]
    assert w >= 2 * nw, f"a {nw} px image is shown {w:.0f} px wide"
    assert abs(w / h - nw / nh) < 0.02, f"{nw}x{nh} shown as {w:.0f}x{h:.0f}: cropped or stretched"
    assert shown["rendering"] == "pixelated"


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed (launch.sh test installs it)")
def test_browser_small_images_are_shown_whole_and_enlarged(server):
    from playwright.sync_api import sync_playwright

    from studio.requests import GenerationRequest
    from tests.conftest import launch_chromium, open_gallery_and_pick

    url, studio = server
    studio.generate(GenerationRequest("a flat heron", model_id="tiny-random", seed=4, width=64, height=32))
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = open_gallery_and_pick(browser, url, "heron", "· 1 image")
        selected = _shown(page, "#gallery-preview img")
        page.get_by_role("button", name="Re-generate").click()
        regenerated = _shown(page, "#gallery-regenerated img")
        page.get_by_role("tab", name="txt2img").click()
        page.locator("#txt2img-prompt textarea").fill("a red circle")
        page.locator("#txt2img-generate").click()
        output = _shown(page, "#txt2img-images img")
        browser.close()
    assert selected["natural"] == regenerated["natural"] == [64, 32] and output["natural"] == [64, 64]
    for shown in (selected, regenerated, output):
        _assert_enlarged_whole(shown)


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed (launch.sh test installs it)")
def test_browser_failures_clear_old_status_and_missing_files_can_be_deleted(server, tmp_path):
    from pathlib import Path

    from PIL import Image
    from playwright.sync_api import sync_playwright

    from studio.gallery.files import write_png
    from studio.requests import GenerationRequest
    from tests.conftest import launch_chromium, open_gallery_and_pick, wait_until

    url, studio = server
    store = studio.sink.store
    good = write_png(Image.new("RGB", (32, 32), (5, 6, 7)), tmp_path / "keeper.png",
                     {"parameters": "a keeper\nSteps: 4, Seed: 1, Size: 32x32"})
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    gone = studio.generate(GenerationRequest("a lost crane", model_id="tiny-random", seed=9)).saved[0]
    Path(gone.path).unlink()
    store.reconcile()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="PNG Info").click()
        result, facts = page.locator("#pnginfo-result"), page.locator("#pnginfo-facts")
        page.locator("#pnginfo-upload input[type=file]").set_input_files(str(good))
        assert wait_until(lambda: "keeper.png" in facts.inner_text())
        page.locator("#pnginfo-import").click()
        assert wait_until(lambda: "In the gallery as #" in result.inner_text())
        page.locator("#pnginfo-import").click()                                  # the same file again
        assert wait_until(lambda: "already in the gallery as #" in result.inner_text())
        page.locator("#pnginfo-upload button[aria-label*='Clear'], #pnginfo-upload button[aria-label*='clear']") \
            .first.click()
        page.locator("#pnginfo-upload input[type=file]").set_input_files(str(notes))
        toast = page.locator(".toast-body, [data-testid='toast-body']").filter(has_text="notes.png")
        toast.first.wait_for(timeout=30_000)
        toast_text = toast.first.inner_text()
        assert wait_until(lambda: "keeper" not in facts.inner_text() and result.inner_text().strip() == "")

        page.get_by_role("tab", name="Gallery").click()
        page.locator("#gallery-search textarea, #gallery-search input").first.fill("crane")
        page.keyboard.press("Enter")
        label = page.locator("#gallery-page")
        assert wait_until(lambda: "0 images" in label.inner_text())             # missing files hidden
        page.get_by_text("Filters").click()
        page.get_by_label("Include missing files").check()
        assert wait_until(lambda: "· 1 image" in label.inner_text())
        assert "file missing" in page.locator("#gallery-grid").inner_text()
        page.locator("#gallery-grid button img, #gallery-grid img").first.click()
        assert wait_until(lambda: "The file is missing" in page.locator("#gallery-facts").inner_text())
        page.locator("#gallery-delete").click()
        page.locator("#gallery-confirm").click()
        assert wait_until(lambda: store.get(gone.image_id) is None)

        page.locator("#gallery-size textarea, #gallery-size input").first.fill("99999999999999999999x1")
        page.get_by_role("button", name="Search", exact=True).click()
        page.locator(".toast-body, [data-testid='toast-body']").filter(has_text="size").first.wait_for(timeout=30_000)
        assert wait_until(lambda: label.inner_text().strip() == "")             # no page label of the old search
        browser.close()
    assert "is not an image" in toast_text and str(tmp_path) not in toast_text and "bug" not in toast_text
    assert store.search(text="keeper").total == 1


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed (launch.sh test installs it)")
def test_browser_import_a_folder_then_find_it_by_source_with_its_model_missing(server, tmp_path):
    import json
    from pathlib import Path

    from PIL import Image, PngImagePlugin
    from playwright.sync_api import sync_playwright

    from tests.conftest import launch_chromium, search_gallery_and_pick, wait_until

    url, studio = server
    chunks = json.loads((Path(__file__).parent / "fixtures" / "fooocus_2_1_legacy.json").read_text())["chunks"]
    folder = tmp_path / "Fooocus" / "outputs"
    folder.mkdir(parents=True)
    for i in range(3):
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", chunks["parameters"].replace("lighthouse", f"lighthouse number{i}"))
        Image.new("RGB", (64, 48), (i, 9, 9)).save(folder / f"{i}.png", pnginfo=info)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="Gallery").click()
        page.get_by_text("Import a folder").click()
        page.locator("#gallery-import-folder textarea, #gallery-import-folder input").first.fill(str(folder))
        page.locator("#gallery-import-start").click()
        status = page.locator("#gallery-import-status")
        assert wait_until(lambda: "3 of 3 imported (fooocus 3)" in status.inner_text(), 60), status.inner_text()
        search_gallery_and_pick(page, "source:fooocus lighthouse", "· 3 images")
        facts = page.locator("#gallery-facts")
        assert wait_until(lambda: "juggernautXL_version6Rundiffusion" in facts.inner_text())
        text = facts.inner_text()
        browser.close()
    assert "Imported from Fooocus" in text and "model 'juggernautXL_version6Rundiffusion' missing" in text
    assert "LoRA 'sd_xl_offset_example-lora_1.0' missing" in text
