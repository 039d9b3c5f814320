"""The Models tab: builds, lists every model with where it is, loads/unloads, refuses downloads offline."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from studio.ui import tab_models


def test_tab_builds_and_its_handlers_work(make_studio):
    studio = make_studio()
    ctx = SimpleNamespace(settings=SimpleNamespace(offline=True), concurrency=1)
    with gr.Blocks():
        with gr.Tabs():
            tab_models.build(studio, ctx)

    rows, summary = tab_models.refresh(studio)
    by_id = {r[0]: r for r in rows}
    assert {"tiny-flux", "tiny-sd15", "flux-schnell"} <= set(by_id)
    assert by_id["tiny-flux"][3] == "disk" and by_id["tiny-flux"][4].startswith("~")
    assert "RAM" in summary and "free of" in summary

    rows, _, status = tab_models.load(studio, "tiny-flux")
    row = next(r for r in rows if r[0] == "tiny-flux")
    assert row[3] == "CPU" and row[5] == "cpu" and "Loaded" in status

    rows, _, status = tab_models.unload(studio, "tiny-flux")
    assert next(r for r in rows if r[0] == "tiny-flux")[3] == "disk" and "Unloaded" in status

    from studio.errors import ModelUnavailable

    with pytest.raises(ModelUnavailable, match="offline"):
        tab_models.download(studio, "flux-schnell", progress=lambda *a, **k: None)
