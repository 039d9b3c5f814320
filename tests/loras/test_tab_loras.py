"""The LoRAs tab on a real server: the /loras API, every generating endpoint's ``loras``, bad input
named with nothing written, and a real browser that mixes two LoRAs and generates."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import launch_chromium, png_files, serving, wait_until
from tests.loras.conftest import save_docs_shot

pytestmark = pytest.mark.e2e
needs_chromium = pytest.mark.skipif(not shutil.which("chromium"),
                                    reason="Debian's chromium is not installed (launch.sh test installs it)")


@pytest.fixture(scope="module")
def server(lora_models, tmp_path_factory):
    with serving(lora_models, tmp_path_factory.mktemp("loras-out"), default_model="tiny-flux") as served:
        yield served.url, served.studio


def test_the_loras_endpoint_lists_the_library_with_metadata_and_fit(server):
    from gradio_client import Client

    client = Client(server[0], verbose=False)
    library = client.predict(query="", family="", model="tiny-flux", api_name="/loras")
    by_name = {x["name"]: x for x in library}
    assert len(by_name) == 7
    style = by_name["flux-style"]
    assert (style["family"], style["rank"], style["title"], style["trigger_words"], style["fits"]) == \
        ("flux1", 4, "Tiny style", ["tinystyle", "bold lines"], True)
    assert style["preview"] == "flux-style.preview.png" and style["resolution"] == "64x64"
    assert by_name["sdxl-style"]["fits"] is False and "FLUX.1 schnell models cannot use it" in \
        by_name["sdxl-style"]["why"]
    only = client.predict(query="kohya", family="sd15", model="", api_name="/loras")
    assert [x["name"] for x in only] == ["kohya/sd15-kohya"] and "fits" not in only[0]
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/loras"]
    assert [p["parameter_name"] for p in api["parameters"]] == ["query", "family", "model"]
    assert all(p["parameter_has_default"] for p in api["parameters"]) and api["returns"][0]["label"] == "LoRAs"


def test_txt2img_takes_a_mix_and_refuses_bad_loras_writing_nothing(server):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    url, studio = server
    client = Client(url, verbose=False)
    images, seed, infotext, ids, status = client.predict(
        prompt="a red circle <lora:flux-second:0.5>", loras="flux-style:1", seed=4, steps=2, api_name="/txt2img")
    assert infotext.splitlines()[0] == "a red circle <lora:flux-style:1> <lora:flux-second:0.5>"
    assert "Lora hashes:" in infotext and len(ids) == 1
    before = png_files(studio.sink.outputs_dir)
    for loras, prompt, message in (("nope:1", "x", "LoRA 'nope' not found"),
                                   ("flux-style:2.5", "x", "weight of 'flux-style' must be within -2..2"),
                                   ("flux-style:nan", "x", "loras: must be a finite number"),
                                   ("sdxl-style:1", "x", "cannot be used with"),
                                   ("../x:1", "x", "is not a LoRA name"),
                                   ("flux-style:1", "x <lora:flux-style:0.5>", "disagree")):
        with pytest.raises(AppError, match=message):
            client.predict(prompt=prompt, loras=loras, seed=1, steps=2, api_name="/txt2img")
    assert png_files(studio.sink.outputs_dir) == before


@needs_chromium
def test_browser_mixes_two_loras_and_generates(server, tmp_path):
    from playwright.sync_api import sync_playwright

    url, studio = server
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="LoRAs").click()
        table = page.locator("#loras-table")
        assert wait_until(lambda: "flux-second" in table.inner_text())
        for name, weight in (("flux-style", "1"), ("flux-second", "0.5")):
            table.get_by_role("gridcell", name=name, exact=True).first.click()
            details = page.locator("#loras-details")
            assert wait_until(lambda: name in details.inner_text()), details.inner_text()
            page.locator("#loras-weight input").fill(weight)
            page.locator("#loras-add").click()
            mix_text = page.locator("#loras-mix-text textarea, #loras-mix-text input").first
            assert wait_until(lambda: name in mix_text.input_value())
        assert mix_text.input_value() == "flux-style:1, flux-second:0.5"
        page.locator("#loras-mix").get_by_role("gridcell", name="flux-second", exact=True).first.click()
        page.locator("#loras-toggle").click()                        # off, and on again
        assert wait_until(lambda: mix_text.input_value() == "flux-style:1")
        page.locator("#loras-toggle").click()
        assert wait_until(lambda: mix_text.input_value() == "flux-style:1, flux-second:0.5")
        save_docs_shot(page.screenshot(full_page=True), "tiny")
        page.locator("#loras-table").get_by_role("gridcell", name="flux-style", exact=True).first.click()
        assert wait_until(lambda: "tinystyle" in page.locator("#loras-details").inner_text())
        page.locator("#loras-trigger").click()                         # trigger words into txt2img's prompt
        page.get_by_text("Presets", exact=True).click()
        page.locator("#loras-preset-name textarea, #loras-preset-name input").first.fill("two styles")
        page.locator("#loras-preset-save").click()
        assert wait_until(lambda: "Saved the preset" in page.locator("#loras-status").inner_text())
        page.locator("#loras-clear").click()
        assert wait_until(lambda: mix_text.input_value() == "")
        page.locator("#loras-presets input").first.fill("two styles")
        page.keyboard.press("Enter")
        page.locator("#loras-preset-load").click()
        assert wait_until(lambda: mix_text.input_value() == "flux-style:1, flux-second:0.5")
        page.get_by_role("tab", name="txt2img").click()
        loras = page.locator("#txt2img-loras textarea, #txt2img-loras input").first
        assert wait_until(lambda: loras.input_value() == "flux-style:1, flux-second:0.5")
        prompt = page.locator("#txt2img-prompt textarea")
        assert wait_until(lambda: prompt.input_value() == "tinystyle, bold lines"), \
            (prompt.input_value(), page.locator(".toast-body").all_inner_texts())
        prompt.fill("a red circle")
        page.locator("#txt2img-seed input").fill("7")
        page.locator("#txt2img-steps input").fill("2")
        page.locator("#txt2img-generate").click()
        infotext = page.locator("#txt2img-infotext textarea").first
        assert wait_until(lambda: "Lora hashes" in infotext.input_value(), timeout=90)
        said = infotext.input_value()
        browser.close()
    assert said.splitlines()[0] == "a red circle <lora:flux-style:1> <lora:flux-second:0.5>"
    newest = max(png_files(studio.sink.outputs_dir), key=lambda p: p.stat().st_mtime)
    assert "flux-second" in newest.read_bytes().decode("latin-1")
