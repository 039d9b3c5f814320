"""The txt2img form on a real server: what the UI says is what the API says, results stream,
Cancel reaches queued jobs, "send to" keeps what the form accepts (gradio_client, raw HTTP, Chromium)."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request

import pytest

from tests.conftest import launch_chromium, open_gallery_and_pick, search_gallery_and_pick, serving, wait_until

pytestmark = pytest.mark.e2e
needs_chromium = pytest.mark.skipif(not shutil.which("chromium"),
                                    reason="Debian's chromium is not installed (launch.sh test installs it)")


@pytest.fixture(scope="module")
def server(tiny_models_dir, sd15_lora_named, tmp_path_factory):
    with serving(tiny_models_dir, tmp_path_factory.mktemp("form-outputs"), default_model="tiny-flux") as served:
        yield served.url, served.studio


def raw_call(url: str, data_json: str) -> tuple[str, str]:
    """POST the raw HTTP API (the body as written, NaN included), then read its event stream."""
    post = urllib.request.Request(url + "gradio_api/call/txt2img", data=data_json.encode(),
                                  headers={"Content-Type": "application/json"})
    event_id = json.load(urllib.request.urlopen(post, timeout=30))["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/txt2img/{event_id}", timeout=60) as stream:
        text = stream.read().decode()
    kind = text.split("event: ", 1)[1].split("\n", 1)[0]
    return kind, text


@pytest.mark.parametrize("position, value, message", [
    (3, "NaN", "width: must be a finite number, got nan"),
    (3, '"abc"', "width: must be a number, got 'abc'"),
    (5, "NaN", "steps: must be a finite number, got nan"),
    (8, "NaN", "batch_count: must be a finite number, got nan"),
    (9, '"two"', "batch_size: must be a number, got 'two'"),
    (7, "1e30", "seed: must be within 0..18446744073709551615"),
    (7, "18446744073709551616", "seed: must be within 0..18446744073709551615, got 18446744073709551616"),
])
def test_raw_http_bad_numbers_are_named_user_errors(server, position, value, message, capfd):
    url, studio = server
    before = studio.sink.store.count()
    values = ['"a red circle"', '""', '"tiny-flux"', "64", "64", "2", "0", "1", "1", "1", '""']
    values[position] = value
    kind, text = raw_call(url, "{\"data\": [" + ", ".join(values) + "]}")
    assert kind == "error" and message in text, text
    assert "bug in the studio" not in text and "Could not preprocess" not in text
    assert studio.sink.store.count() == before
    assert "Traceback" not in capfd.readouterr().err              # the user's error: no console traceback


def test_each_batch_is_shown_as_it_finishes_and_an_empty_prompt_is_said(server):
    from gradio_client import Client

    client = Client(server[0], verbose=False)
    job = client.submit("", seed=5, batch_count=3, api_name="/txt2img")
    gallery, seed, infotext, ids, info = job.result(timeout=120)
    counts = [len(out[0]) for out in job.outputs()]
    assert counts[:3] == [1, 2, 3] and counts[-1] == 3          # batch 1 was out while batch 2 ran
    assert seed == "5" and "The prompt is empty" in info and len(ids) == 3 and "Seed: 5" in infotext


@needs_chromium
def test_typed_values_are_never_clamped_and_seed_used_starts_empty(server):
    from playwright.sync_api import sync_playwright

    url, studio = server
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="domcontentloaded")
        seed_used = page.locator("#txt2img-seed-used input, #txt2img-seed-used textarea").first
        seed_used.wait_for(state="visible", timeout=30_000)
        empty_before = seed_used.input_value()
        width = page.locator("#txt2img-width input")
        width.fill("100000")
        width.press("Tab")
        page.locator("#txt2img-prompt textarea").fill("a cat")
        page.locator("#txt2img-generate").click()
        toast = page.locator(".toast-body")
        assert wait_until(lambda: "width: must be within 16..4096, got 100000" in " ".join(toast.all_inner_texts()))
        typed = width.input_value()
        width.fill("64")
        page.locator("#txt2img-seed input").fill("41")
        page.locator("#txt2img-generate").click()
        assert wait_until(lambda: seed_used.input_value() == "41", timeout=60)
        browser.close()
    assert empty_before == "" and typed == "100000"


@needs_chromium
def test_a_64_bit_seed_typed_in_the_browser_comes_back_exact(server):
    """A browser number holds 53 bits: in a number box 2^64-1 would become 18446744073709552000.
    The seed box is text, so the digits reach the request, the PNG and "Seed used" as typed."""
    from playwright.sync_api import sync_playwright

    url, studio = server
    big = "18446744073709551615"
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="domcontentloaded")
        seed_box = page.locator("#txt2img-seed input")
        seed_box.wait_for(state="visible", timeout=30_000)
        assert page.evaluate(f"String(Number('{big}'))") == "18446744073709552000"    # what a number box keeps
        assert seed_box.get_attribute("type") == "text"
        page.locator("#txt2img-width input").fill("64")
        page.locator("#txt2img-height input").fill("64")
        page.locator("#txt2img-prompt textarea").fill("a big seed")
        seed_box.fill(big)
        page.locator("#txt2img-generate").click()
        seed_used = page.locator("#txt2img-seed-used input, #txt2img-seed-used textarea").first
        assert wait_until(lambda: seed_used.input_value() == big, timeout=90), seed_used.input_value()
        infotext = page.locator("#txt2img-infotext textarea").input_value()
        browser.close()
    assert f"Seed: {big}," in infotext
    record = studio.sink.store.search(text="big seed").items[0]
    assert record.seed == 2**64 - 1 and record.request.seed == 2**64 - 1


@needs_chromium
def test_cancel_takes_a_queued_job_out_of_the_queue(server):
    """Session A runs a long job; session B queues one behind it and cancels: B never runs."""
    from gradio_client import Client
    from playwright.sync_api import sync_playwright

    url, studio = server
    store = studio.sink.store
    long_job = Client(url, verbose=False).submit("long running", seed=1, steps=50, batch_count=100,
                                                 api_name="/txt2img")
    assert wait_until(lambda: store.search(text="running").total >= 1, timeout=60)   # A is running
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="domcontentloaded")
        page.locator("#txt2img-prompt textarea").fill("queued zebra")
        page.locator("#txt2img-generate").click()
        time.sleep(1.5)
        assert not long_job.done()                   # so B is waiting in the queue behind A
        page.locator("#txt2img-cancel").click()
        time.sleep(1.0)
        long_job.cancel()
        assert wait_until(long_job.done, timeout=60)
        time.sleep(3.0)                              # the queue moves on: B must not start
        browser.close()
    assert store.search(text="zebra").total == 0
    assert not [p for p in studio.sink.outputs_dir.rglob("*.png") if "zebra" in p.read_bytes().decode("latin-1")]


@needs_chromium
def test_send_to_keeps_loras_and_names_what_the_form_refuses(server, sd15_lora_named, tmp_path):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from studio.gallery.files import write_png
    from studio.requests import GenerationRequest, LoraSpec

    url, studio = server
    studio.generate(GenerationRequest("a lynx", model_id="tiny-sd15", seed=8, steps=3,
                                      loras=(LoraSpec(sd15_lora_named, 0.5),)))
    foreign = write_png(Image.new("RGB", (64, 64)), tmp_path / "foreign.png",
                        {"parameters": "an ocelot\nSteps: 500, Sampler: Euler, CFG scale: 7, Seed: 3, "
                                       "Size: 64x64, Model: juggernautXL"})
    studio.sink.store.import_image(foreign)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = open_gallery_and_pick(browser, url, "lynx", "· 1 image")
        assert wait_until(lambda: "seed" in page.locator("#gallery-facts").inner_text())
        page.locator("#gallery-send").click()
        loras = page.locator("#txt2img-loras textarea, #txt2img-loras input").first
        assert wait_until(lambda: loras.input_value() == f"{sd15_lora_named}:0.5")
        steps_before = page.locator("#txt2img-steps input").input_value()
        search_gallery_and_pick(page, "ocelot", "· 1 image")
        assert wait_until(lambda: "seed **3**" in page.locator("#gallery-facts").inner_text()
                          or "seed 3" in page.locator("#gallery-facts").inner_text())
        page.locator("#gallery-send").click()
        prompt = page.locator("#txt2img-prompt textarea")
        assert wait_until(lambda: prompt.input_value() == "an ocelot")
        toast = page.locator(".toast-body")
        assert wait_until(lambda: "steps: must be within 1..200, got 500" in " ".join(toast.all_inner_texts()))
        said = " ".join(toast.all_inner_texts())
        steps_after = page.locator("#txt2img-steps input").input_value()
        seed = page.locator("#txt2img-seed input").input_value()
        browser.close()
    assert "model 'juggernautXL' is not in this studio" in said
    assert steps_after == steps_before == "3" and seed == "3"


@needs_chromium
def test_models_table_headers_keep_whole_words_and_notes_are_readable(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server[0], wait_until="domcontentloaded")
        page.get_by_role("tab", name="Models").click()
        header = page.locator("#models-table th", has_text="placement").first
        header.wait_for(state="visible", timeout=30_000)
        heights = page.locator("#models-table th span.header").evaluate_all(
            "spans => spans.map(s => Math.round(s.getBoundingClientRect().height))")
        clipped = page.locator("#models-table td").evaluate_all(
            "cells => cells.filter(c => c.scrollWidth > c.clientWidth + 1).length")
        browser.close()
    assert len(heights) == 7 and len(set(heights)) == 1         # every header on one line, "placement" too
    assert clipped == 0


def test_generate_shows_one_progress_bar_on_the_images(server):
    """Progress is drawn on the output gallery only, not on every output (seed, info) too."""
    from gradio_client import Client

    config = Client(server[0], verbose=False).config
    ids = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    deps = [d for d in config["dependencies"] if d.get("api_name") == "txt2img"]
    assert len(deps) == 1 and [ids[i] for i in deps[0]["show_progress_on"]] == ["txt2img-images"]
