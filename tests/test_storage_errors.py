"""The outputs folder fails while the studio runs (disk full, a file where the day's folder was):
the user is told which folder and why, nothing half-written stays, and the next generation after
the fix works. User errors reach the UI without a console traceback; bugs still have one."""

from __future__ import annotations

import errno
import os
import shutil
import threading
from pathlib import Path

import gradio as gr
import pytest

from studio.errors import StorageError
from studio.gallery import files
from studio.requests import GenerationRequest
from tests.conftest import png_files


def generate(studio, seed: int, batch_size: int = 1):
    """studio.generate in a thread with a deadline: a failure must never hang the generation."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = studio.generate(GenerationRequest("a red circle", model_id="tiny-flux", seed=seed,
                                                                  batch_size=batch_size))
        except Exception as err:  # noqa: BLE001 - handed to the test
            outcome["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "the generation hung"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def leftovers(outputs) -> list:
    return sorted(p.name for p in outputs.rglob("*") if p.is_file() and p.name.startswith(".tmp-"))


def test_disk_full_while_saving_names_the_folder_and_keeps_nothing(make_studio, monkeypatch):
    studio = make_studio()
    outputs, store = studio.sink.outputs_dir, studio.sink.store

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))   # as os.link says it, temp path included

    monkeypatch.setattr(files.os, "link", disk_full)
    with pytest.raises(StorageError) as caught:
        generate(studio, seed=1, batch_size=2)
    message = str(caught.value)
    assert f"cannot write to {outputs / 'txt2img'}" in message and "No space left on device" in message
    assert ".tmp-" not in message and "generate again" in message
    assert png_files(outputs) == [] and leftovers(outputs) == [] and store.search().total == 0

    monkeypatch.undo()                                                    # space is free again
    result = generate(studio, seed=2)
    assert len(result.saved) == 1 and len(png_files(outputs)) == 1 and store.search().total == 1


def test_a_file_where_the_days_folder_was_is_said_and_the_studio_recovers(make_studio):
    studio = make_studio()
    outputs, store = studio.sink.outputs_dir, studio.sink.store
    first = generate(studio, seed=1)
    day = Path(first.saved[0].path).parent                               # outputs/txt2img/<YYYY-MM-DD>
    assert day.is_dir() and day.parent == outputs / "txt2img"
    shutil.move(day, day.with_name("moved-away"))
    day.write_text("someone put a file here")
    with pytest.raises(StorageError, match=f"cannot write to {day}: {day} is a file, not a folder"):
        generate(studio, seed=2)
    assert store.search().total == 1

    day.unlink()                                                          # the user removes it
    again = generate(studio, seed=3)
    assert len(again.saved) == 1 and store.search().total == 2 and Path(again.saved[0].path).parent == day


def test_user_errors_reach_the_ui_without_a_console_traceback_bugs_with_one():
    from studio.ui.errors import shown_as_gr_error

    @shown_as_gr_error
    def fails(err: Exception):
        raise err

    with pytest.raises(gr.Error) as user:
        fails(StorageError("cannot write to /out/txt2img/2026-11-26: No space left on device. Fix it."))
    assert user.value.print_exception is False and "No space left on device" in user.value.message
    assert "bug" not in user.value.message
    with pytest.raises(gr.Error) as bug:
        fails(KeyError("oops"))
    assert bug.value.print_exception is True and "This is a bug in the studio" in bug.value.message
