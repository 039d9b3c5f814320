"""The server serves only what the UI shows: images under outputs and Gradio's own cache.

``may_serve`` is the rule; the HTTP tests ask a launched server (``launch_kwargs``, as app.py
launches it) for each thing that must stay private, with and without a login."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

from studio.ui.serving import may_serve
from tests.conftest import free_port

GRADIO = [Path("/tmp/gradio-cache-for-test")]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    outputs = tmp_path / "outputs"
    (outputs / "txt2img" / "2026-01-01").mkdir(parents=True)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(outputs / "txt2img" / "2026-01-01" / "00001-7.png")
    for name in ("gallery.db", "gallery.db-wal", "gallery.db-shm", "gallery.db-journal",
                 "gallery.db.bak-0002-20260101T000000", "notes.txt", "gallery-20260101-2.zip", "x.PNG.bak"):
        (outputs / name).write_bytes(b"private")
    (outputs / ".tmp-00002-8.png").write_bytes(b"half")
    (outputs / "imported").mkdir()
    (outputs / "imported" / ".deleted-x.png").write_bytes(b"going")
    os.symlink("/etc/passwd", outputs / "passwd.png")
    os.symlink(outputs / "gallery.db", outputs / "db.png")
    (tmp_path / "secret.png").write_bytes(b"outside")
    return outputs


def test_the_rule(tree):
    image = tree / "txt2img" / "2026-01-01" / "00001-7.png"
    assert may_serve(str(image), tree, GRADIO)
    assert may_serve(str(tree / "imported" / "from-a-camera.JPG"), tree, GRADIO)     # any case of an image suffix
    for name in ("gallery.db", "gallery.db-wal", "gallery.db-shm", "gallery.db-journal",
                 "gallery.db.bak-0002-20260101T000000", "notes.txt", "gallery-20260101-2.zip", "x.PNG.bak",
                 ".tmp-00002-8.png", "imported/.deleted-x.png", "passwd.png", "db.png", "txt2img/../gallery.db"):
        assert not may_serve(str(tree / name), tree, GRADIO), name
    for outside in ("/etc/passwd", str(tree.parent / "secret.png"), "https://example.com/x.png", "", "gallery.db"):
        assert not may_serve(outside, tree, GRADIO), outside
    assert may_serve("/tmp/gradio-cache-for-test/0a1b/gallery-20260101-2.zip", tree, GRADIO)   # Gradio's own cache


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A launched server with the studio's launch options, a login, and an outputs folder holding
    everything that must stay private (plus one image)."""
    import gradio as gr

    from studio.config import Settings
    from studio.gallery.store import GalleryStore
    from studio.ui.app import launch_kwargs

    root = tmp_path_factory.mktemp("serving")
    outputs = root / "outputs"
    store = GalleryStore(outputs)
    store.import_image(_image(root / "in.png"))             # a write: the WAL and SHM files exist
    settings = Settings(outputs_dir=outputs, port=free_port(), auth=(("ann", "pw"),))
    with gr.Blocks() as demo:
        gr.Markdown("files")
    demo.launch(**launch_kwargs(settings), prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{settings.port}", outputs, root
    demo.close()
    store.close()


def _image(path: Path) -> Path:
    Image.new("RGB", (8, 8), (9, 9, 9)).save(path)
    return path


def _private(outputs: Path, root: Path) -> list[Path]:
    for name in ("gallery.db.bak-0002-20260101T000000", "notes.txt", "gallery-20260101-1.zip"):
        (outputs / name).write_bytes(b"private")
    (outputs / ".tmp-x.png").write_bytes(b"half")
    (root / "export-of-another-session").mkdir(exist_ok=True)
    (root / "export-of-another-session" / "gallery-20260101-3.zip").write_bytes(b"PK")
    if not (outputs / "passwd.png").exists():
        os.symlink("/etc/passwd", outputs / "passwd.png")
    return [outputs / "gallery.db", outputs / "gallery.db-wal", outputs / "gallery.db-shm",
            outputs / "gallery.db.bak-0002-20260101T000000", outputs / "notes.txt", outputs / "gallery-20260101-1.zip",
            outputs / ".tmp-x.png", outputs / "passwd.png", Path("/etc/passwd"), root / "in.png",
            root / "export-of-another-session" / "gallery-20260101-3.zip"]


def _get(client, base: str, path: Path | str, route: str = "file="):
    return client.get(f"{base}/gradio_api/{route}{quote(str(path))}")


def test_over_http_only_images_under_outputs_are_served(served):
    import httpx

    base, outputs, root = served
    private = _private(outputs, root)
    assert all(p.exists() for p in private)                  # each refusal below is a refusal, not a 404
    image = outputs / "imported" / "in.png"
    with httpx.Client() as anonymous:
        assert _get(anonymous, base, image).status_code in (401, 403)          # the login still guards images
        assert _get(anonymous, base, outputs / "gallery.db").status_code in (401, 403)
    with httpx.Client() as ann:
        assert ann.post(f"{base}/login", data={"username": "ann", "password": "pw"}).status_code == 200
        answer = _get(ann, base, image)
        assert answer.status_code == 200 and answer.content == image.read_bytes()
        assert ann.head(f"{base}/gradio_api/file={quote(str(image))}").status_code == 200
        for path in private:
            for route in ("file=", "file/"):
                answer = _get(ann, base, path, route)
                assert answer.status_code in (403, 404) and b"private" not in answer.content, (route, path)
        sneaky = f"{outputs}/imported/../gallery.db"
        assert ann.get(f"{base}/gradio_api/file={sneaky}").status_code in (403, 404)
        assert ann.get(f"{base}/gradio_api/file=https://example.com/x.png").status_code == 403
