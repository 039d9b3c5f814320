"""Bad ControlNet input is one clear error naming the field and the unit, and nothing is written
(no image, no row, no stored input); a map of another aspect is stretched, and the status says so."""

from __future__ import annotations

import json

import pytest

from studio import forms_controls
from studio.errors import InvalidRequest
from tests.conftest import png_files

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def client(cn_server):
    from gradio_client import Client

    return Client(cn_server[0], verbose=False)


def written(studio) -> tuple:
    inputs = studio.sink.outputs_dir / "inputs"
    return (studio.sink.store.count(), len(png_files(studio.sink.outputs_dir)),
            len(list(inputs.iterdir())) if inputs.is_dir() else 0)


def units(n: int) -> str:
    return json.dumps([{"type": "canny", "model": "flux-union"}] * n)


@pytest.mark.parametrize("params, message", [
    ({"model": "tiny-sd15", "controlnet": "flux-canny"},
     "controls: unit 1: ControlNet 'flux-canny' is a FLUX.1 net (FluxControlNetModel); tiny-sd15"),
    ({"controlnet": "flux-union3", "control_type": "pose", "preprocessor": "none"},
     "controls: unit 1: ControlNet 'flux-union3' has no 'pose' mode; its modes: canny, tile, depth"),
    ({"controlnet": "flux-canny", "control_mode": "depth"}, "ControlNet 'flux-canny' is not a union net"),
    ({"start": 0.6, "end": 0.4}, "controls: guidance start/end must satisfy 0 <= start < end <= 1, got start 0.6"),
    ({"control_type": "depth", "preprocessor": "depth_midas"},
     "is not downloaded and the studio is offline. On a machine with network run `hf download "
     "Intel/dpt-hybrid-midas`"),
    ({"control_type": "pose"}, "`hf download lllyasviel/Annotators body_pose_model.pth`"),
    ({"units": units(3), "unit_images": 3}, "controls: at most 3 ControlNet units at once, got 4"),
    ({"units": units(1), "unit_images": 0}, "units: 1 unit(s) but 0 unit image(s)"),
    ({"units": '[{"type": "canny", "weight": 2}]', "unit_images": 1}, "units: unit 2: unknown field(s) ['weight']"),
    ({"canny_low": 250, "canny_high": 10}, "canny thresholds must satisfy 0 <= low <= high <= 255"),
    ({"model": "tiny-sdxl", "controlnet": "sdxl-union", "units": '[{"type": "depth", "model": "sdxl-depth"}]',
      "unit_images": 1}, "union nets (ControlNetUnionModel) run in pipelines of their own"),
])
def test_bad_input_is_one_clear_error_and_nothing_is_written(client, cn_server, shapes, params, message):
    from gradio_client import handle_file

    studio = cn_server[1]
    before = written(studio)
    params = dict(params)
    if "unit_images" in params:
        params["unit_images"] = [handle_file(str(shapes["circle"]))] * params["unit_images"]
    with pytest.raises(Exception) as info:
        client.predict("a cat", handle_file(str(shapes["triangle"])), seed=1, steps=2, api_name="/controlnet",
                       **params)
    assert message in str(info.value), str(info.value)
    assert "bug in the studio" not in str(info.value)
    assert written(studio) == before


def test_a_unit_turned_on_without_an_image_is_named():
    with pytest.raises(InvalidRequest, match="controls: unit 2 is enabled but has no image: add one, or turn the "
                                             "unit off"):
        forms_controls.unit(1, image=None, type="depth")
    assert forms_controls.unit(0, image="c.png", type="depth", threshold_a=100).threshold_a is None   # canny only
    assert forms_controls.unit(0, image="c.png", type="pose", as_is=True).preprocessor == "none"
    assert forms_controls.unit(0, image="c.png", type="pose").preprocessor == "openpose"


def test_a_map_of_another_aspect_is_stretched_and_said(client, cn_server, shapes):
    from gradio_client import handle_file

    images, seed, infotext, ids, status = client.predict("a cat", handle_file(str(shapes["wide"])), seed=2, steps=2,
                                                         api_name="/controlnet")
    assert len(ids) == 1
    assert "ControlNet unit 1: its map is 1024x512 (2.00:1) but the image is 64x64 (1.00:1); the map was " \
           "stretched to fit" in status
