"""Every family x {one net, several nets, several modes of one union net} x {txt2img, img2img},
through the ``/controlnet`` handler on a real server (tiny FLUX, SDXL and SD1.5 pipelines): the
image is not the plain one, the row holds the units and their stored maps, the infotext says them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from studio.requests import GenerationRequest, Task
from tests.control.conftest import px

pytestmark = pytest.mark.e2e

# family model -> case -> units as (type, net); the first unit's settings are the API's plain
# parameters, the others its ``units`` JSON (SD 1.5 has no union net)
CASES = {
    "tiny-flux": {"single": [("canny", "flux-canny")], "multi": [("canny", "flux-canny"), ("depth", "flux-union")],
                  "union": [("canny", "flux-union"), ("depth", "flux-union")]},
    "tiny-sdxl": {"single": [("canny", "sdxl-canny")], "multi": [("canny", "sdxl-canny"), ("depth", "sdxl-depth")],
                  "union": [("canny", "sdxl-union"), ("depth", "sdxl-union")]},
    "tiny-sd15": {"single": [("canny", "sd15-canny")], "multi": [("canny", "sd15-canny"), ("depth", "sd15-depth")]},
}
MATRIX = [(model, case, task) for model, cases in CASES.items() for case in cases for task in (Task.TXT2IMG,
                                                                                                 Task.IMG2IMG)]


@pytest.fixture(scope="module")
def client(cn_server):
    from gradio_client import Client

    return Client(cn_server[0], verbose=False)


@pytest.fixture(scope="module")
def plain(cn_server, shapes):
    """The image without any ControlNet, per (model, task), made once."""
    studio, made = cn_server[1], {}

    def get(model: str, task: Task):
        if (model, task) not in made:
            extra = {"task": task, "init_image": str(shapes["circle"])} if task is Task.IMG2IMG else {}
            made[(model, task)] = studio.generate(GenerationRequest("a cat", model_id=model, seed=11, steps=2,
                                                                    **extra)).images[0]
        return made[(model, task)]

    return get


def call(client, model: str, units: list[tuple[str, str]], shapes, task: Task, modes=None):
    from gradio_client import handle_file

    (kind, net), more = units[0], units[1:]
    extra = {"init_image": handle_file(str(shapes["circle"]))} if task is Task.IMG2IMG else {}
    modes = modes or [""] * len(units)
    return client.predict("a cat", handle_file(str(shapes["triangle"])), model=model, seed=11, steps=2,
                          control_type=kind, controlnet=net, control_mode=modes[0],
                          units=json.dumps([{"type": k, "model": n, "mode": m, "scale": 0.8}
                                            for (k, n), m in zip(more, modes[1:], strict=True)]) if more else "",
                          unit_images=[handle_file(str(shapes["circle"])) for _ in more], api_name="/controlnet",
                          **extra)


@pytest.mark.parametrize("model, case, task", MATRIX, ids=[f"{m}-{c}-{t.value}" for m, c, t in MATRIX])
def test_every_family_case_and_task_through_the_handler(client, cn_server, shapes, plain, model, case, task):
    studio = cn_server[1]
    units = CASES[model][case]
    images, seed, infotext, ids, status = call(client, model, units, shapes, task)
    got = Image.open(images[0]["image"])
    assert seed == "11" and len(ids) == 1
    assert np.abs(px(got) - px(plain(model, task))).mean() > 0.5, "the ControlNet changed nothing"
    row = studio.sink.store.get(ids[0])
    assert row.task == task.value and [(u.type, u.model) for u in row.controls] == units
    for unit in row.controls:                                   # maps made by each preprocessor, stored with the row
        assert unit.map.startswith("inputs/") and (studio.sink.outputs_dir / unit.map).is_file()
    assert all(f"ControlNet {i}: \"Module: {u.preprocessor}, Model: {u.model}, Weight: " in infotext
               for i, u in enumerate(row.controls))
    if case == "union":                                         # the modes reach the one net
        same_mode = call(client, model, units, shapes, task, modes=["canny", "canny"])
        assert not np.array_equal(px(Image.open(same_mode[0][0]["image"])), px(got))
