"""Saving is off the critical path: batch k is written while batch k+1 is generated, in order,
all or nothing, and the result lists every image once it is on disk."""

from __future__ import annotations

import threading
import time

import pytest

from studio.requests import GenerationRequest


@pytest.fixture
def studio(make_studio):
    return make_studio()


def test_a_batch_is_saved_while_the_next_one_runs(studio):
    real_save, log = studio.sink.save, []

    def slow_save(*args, **kwargs):
        log.append(("save-start", time.perf_counter(), threading.current_thread().name))
        time.sleep(0.4)
        out = real_save(*args, **kwargs)
        log.append(("save-end", time.perf_counter(), threading.current_thread().name))
        return out

    studio.sink.save = slow_save
    seen = []
    result = studio.generate(GenerationRequest("a cat", model_id="tiny-flux", seed=1, steps=2, batch_count=3),
                             on_progress=lambda ev: log.append((f"step-{ev.batch}", time.perf_counter(), "")),
                             on_saved=lambda saved: seen.append([s.seed for s in saved]))
    first_save = [t for kind, t, _ in log if kind == "save-start"][0], [t for kind, t, _ in log if kind == "save-end"][0]
    batch_1_steps = [t for kind, t, _ in log if kind == "step-1"]
    assert any(first_save[0] < t < first_save[1] for t in batch_1_steps)      # generated while batch 0 was saved
    assert all(name.startswith("studio-writer") for kind, _, name in log if kind.startswith("save"))
    assert seen == [[1], [2], [3]] and [s.seed for s in result.saved] == [1, 2, 3]
    assert all(p.is_file() for p in map(lambda s: __import__("pathlib").Path(s.path), result.saved))
    assert studio.sink.store.count() == 3


def test_a_failed_save_stops_the_run_and_leaves_nothing_half_written(studio):
    from studio.errors import StorageError

    real_save, calls = studio.sink.save, []

    def second_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise StorageError("outputs: No space left on device")
        return real_save(*args, **kwargs)

    studio.sink.save = second_fails
    with pytest.raises(StorageError, match="No space left"):
        studio.generate(GenerationRequest("a cat", model_id="tiny-flux", seed=1, steps=2, batch_count=5))
    assert studio.sink.store.count() == 1 and len(calls) <= 3                   # the run stopped early
    assert len(list(studio.sink.outputs_dir.rglob("0*.png"))) == 1
