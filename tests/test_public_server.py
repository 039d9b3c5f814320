"""Public mode on a real server: two gradio_client visitors, files over HTTP, and a browser."""

from __future__ import annotations

import shutil
import time
from urllib.parse import quote

import pytest

from tests.conftest import launch_chromium, png_files, serving, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("public")
    with serving(root / "models", root / "outputs", default_model="tiny-random", public=True, max_steps=6,
                 max_size=128) as served:
        yield served.url.rstrip("/"), served.studio


def _client(url: str):
    from gradio_client import Client

    return Client(url + "/", verbose=False)


def test_two_visitors_each_see_only_their_own_and_cannot_touch_the_others(server):
    import httpx

    url, studio = server
    store = studio.sink.store
    ann, bob = _client(url), _client(url)
    assert ann.cookies.get("studio_visitor") and ann.cookies["studio_visitor"] != bob.cookies["studio_visitor"]
    _, _, _, [a_id], _ = ann.predict("a red cat", seed=1, api_name="/txt2img")
    _, _, _, [b_id], _ = bob.predict("a blue dog", seed=2, api_name="/txt2img")
    _, ann_ids, _, label = ann.predict(api_name="/gallery_search")
    _, bob_ids, _, _ = bob.predict(api_name="/gallery_search")
    assert (ann_ids, bob_ids, label) == ([a_id], [b_id], "page 1 of 1 · 1 image")
    assert bob.predict(query="cat", api_name="/gallery_search")[1] == []
    with pytest.raises(Exception, match=f"no gallery image {a_id}"):          # not found, never "forbidden"
        bob.predict(a_id, api_name="/gallery_regenerate")
    with pytest.raises(Exception, match="no gallery image 424242"):
        bob.predict(424242, api_name="/gallery_regenerate")
    _, [again] = ann.predict(a_id, api_name="/gallery_regenerate")
    assert store.get(again).owner == store.get(a_id).owner != store.get(b_id).owner
    # the files: each visitor its own; the database, and paths outside, nobody (404, as if not there)
    a_path, b_path = store.get(a_id).path, store.get(b_id).path
    with httpx.Client(cookies=dict(ann.cookies)) as a_http:
        def get(path):
            return a_http.get(f"{url}/gradio_api/file={quote(str(path))}").status_code

        assert get(a_path) == 200
        assert [get(p) for p in (b_path, store.db_path, "/etc/passwd", store.outputs_dir.parent / "x.png")] == [404] * 4
        assert a_http.get(f"{url}/gradio_api/file/{quote(str(b_path))}").status_code == 404
    with httpx.Client() as no_cookie:
        assert no_cookie.get(f"{url}/gradio_api/file={quote(str(a_path))}").status_code == 404
    # visitors have no model management and no import by path
    endpoints = set(ann.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/txt2img", "/gallery_search", "/gallery_regenerate"} <= endpoints
    assert not endpoints & {"/load_model", "/unload_model", "/free_models", "/download_model", "/gallery_import"}


def test_over_limit_requests_say_which_limit_and_write_nothing(server):
    url, studio = server
    store = studio.sink.store
    before, files = store.count(), png_files(store.outputs_dir)
    client = _client(url)
    for kwargs, limit in ((dict(steps=7), "steps: 7 is over this public studio's limit of 6"),
                          (dict(width=256), "width: 256 is over this public studio's limit of 128"),
                          (dict(batch_count=5), "batch: 5 x 1 = 5 images is over")):
        with pytest.raises(Exception, match=limit):
            client.predict("a cat", api_name="/txt2img", **kwargs)
    assert store.count() == before and png_files(store.outputs_dir) == files


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed (launch.sh test installs it)")
def test_browser_public_mode_one_gallery_per_visitor(server, tmp_path):
    from playwright.sync_api import sync_playwright

    url, studio = server
    with sync_playwright() as p:
        browser = launch_chromium(p)
        first = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = first.new_page()
        page.goto(url, wait_until="domcontentloaded")
        page.locator("#public-note").wait_for(timeout=30_000)
        assert page.get_by_role("tab", name="Models").count() == 0
        page.locator("#txt2img-prompt textarea").fill("a green owl")
        page.locator("#txt2img-generate").click()
        assert wait_until(lambda: "image(s) in" in page.locator("#txt2img-info").inner_text(), 60)
        assert "/" not in page.locator("#txt2img-info").inner_text().split("Saved:")[-1]    # names, no folders
        page.reload(wait_until="domcontentloaded")                      # the visitor cookie outlives the page
        page.get_by_role("tab", name="Gallery").click()
        assert wait_until(lambda: "1 image" in page.locator("#gallery-page").inner_text()), \
            page.locator("#gallery-page").inner_text()
        page.screenshot(path=str(tmp_path / "visitor-1.png"))
        other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        other.goto(url, wait_until="domcontentloaded")
        other.get_by_role("tab", name="Gallery").click()
        assert wait_until(lambda: "0 images" in other.locator("#gallery-page").inner_text())
        time.sleep(0.5)
        assert other.locator("#gallery-grid img").count() == 0
        browser.close()
