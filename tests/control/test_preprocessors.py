"""Every preprocessor on fixed images: Canny exact, Depth with tiny models built from configs (Depth
Anything, DPT) found in models/preprocessors/, OpenPose through its detector parts, "none"; what a
missing detector says offline; the working resolution and pixel perfect."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from studio import control
from studio.control import keypoints, pose
from studio.control.base import pixel_perfect, working_size
from studio.errors import InvalidRequest, ModelUnavailable
from studio.requests import ControlUnit
from tests.control.conftest import px


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A fixed 128x96 image: gradients, a bright square and a dark disc (edges of every strength)."""
    y, x = np.mgrid[0:96, 0:128]
    img = np.stack([x * 2, y * 2.5, x + y], axis=-1).astype(np.uint8)
    img[16:48, 16:48] = 250
    img[(x - 88) ** 2 + (y - 60) ** 2 < 320] = 10
    img[64:90, 8:56] += 12                                    # a faint step: only a loose Canny sees it
    return Image.fromarray(img, "RGB")


def no_detectors(part):
    raise AssertionError(f"{part.key} should not be needed")


def test_canny_is_opencv_canny_with_the_units_thresholds(photo):
    import cv2

    gray = np.asarray(photo.convert("L"))
    for low, high in ((100, 200), (20, 60)):
        unit = ControlUnit("canny", "x.png", preprocessor="canny", resolution=96, threshold_a=low, threshold_b=high)
        made = np.asarray(control.make_map(unit, photo, lease=no_detectors))
        expected = cv2.Canny(gray, low, high)
        assert made.shape == (96, 128, 3) and all(np.array_equal(made[..., c], expected) for c in range(3))
    loose = ControlUnit("canny", "x.png", preprocessor="canny", resolution=96, threshold_a=20, threshold_b=60)
    strict = ControlUnit("canny", "x.png", preprocessor="canny", resolution=96)
    assert (px(control.make_map(loose, photo, lease=no_detectors)) > 0).sum() > \
        (px(control.make_map(strict, photo, lease=no_detectors)) > 0).sum()


def test_canny_thresholds_out_of_order_name_the_field(photo):
    unit = ControlUnit("canny", "x.png", preprocessor="canny", threshold_a=200, threshold_b=100)
    with pytest.raises(InvalidRequest, match="controls: canny thresholds must satisfy 0 <= low <= high <= 255, "
                                             "got low 200 and high 100"):
        control.make_map(unit, photo, lease=no_detectors)


def test_the_map_is_made_at_the_working_resolution(photo):
    unit = ControlUnit("canny", "x.png", preprocessor="canny", resolution=192)
    assert control.make_map(unit, photo, lease=no_detectors).size == (256, 192)     # short side 192
    assert working_size((640, 480), 512) == (683, 512)
    assert pixel_perfect((640, 480), (1024, 1024)) == 1024      # the image covers the output: short side 1024
    assert pixel_perfect((64, 64), (64, 64)) == 64 and pixel_perfect((32, 32), (16, 16)) == 64   # 64..4096


def test_none_means_the_image_is_the_map_and_unknown_names_are_listed(photo):
    assert control.make_map(ControlUnit("depth", "x.png", preprocessor="none"), photo, lease=no_detectors) is None
    with pytest.raises(InvalidRequest, match="no preprocessor 'softedge_hed' here; use one of .*'depth_anything_v2'"):
        control.preprocessor("softedge_hed")
    assert control.default_for("depth") == "depth_anything_v2" and control.default_for("tile") == "none"
    assert control.choices("pose") == ["openpose", "openpose_hand", "openpose_face", "openpose_full", "none"]


@pytest.mark.parametrize("name, folder", [("depth_anything_v2", "depth_anything_v2"), ("depth_dpt", "depth_dpt")])
def test_depth_maps_come_from_the_model_in_models_preprocessors(cn_studio, cn_models, photo, name, folder):
    from transformers import pipeline

    unit = ControlUnit("depth", "x.png", preprocessor=name, resolution=96)
    made = cn_studio.control_maps.make(unit, photo)
    direct = pipeline("depth-estimation", model=str(cn_models / "preprocessors" / folder), device="cpu")(photo)
    arr = np.asarray(made)
    assert made.size == photo.size and np.array_equal(arr[..., 0], arr[..., 2])           # gray, RGB
    assert np.array_equal(arr[..., 0], np.asarray(direct["depth"])) and arr.std() > 1     # exactly the model's
    again = cn_studio.control_maps.make(unit, photo)
    assert np.array_equal(np.asarray(again), arr)
    key = control.PREPROCESSORS[name].parts[0].key              # a component of the model manager, loaded once
    assert [c.kind for c in cn_studio.models.components() if c.path == key] == ["preprocessor"]


@pytest.mark.parametrize("name, command, where", [
    ("depth_midas", "hf download Intel/dpt-hybrid-midas", "preprocessors/depth_midas/"),
    ("openpose_hand", "hf download lllyasviel/Annotators body_pose_model.pth", "preprocessors/openpose/"),
])
def test_a_missing_detector_offline_says_what_to_download_and_where(cn_studio, photo, name, command, where):
    unit = ControlUnit("pose" if "pose" in name else "depth", "x.png", preprocessor=name)
    with pytest.raises(ModelUnavailable) as info:
        cn_studio.control_maps.make(unit, photo)
    assert command in str(info.value) and where in str(info.value) and "offline" in str(info.value)


class ScriptedBody:
    """An OpenPose body estimator that finds one person at fixed pixels (the real one's output format)."""

    def __init__(self, points: dict[int, tuple[float, float]]) -> None:
        self.points = points

    def __call__(self, image):
        from controlnet_aux.open_pose import Body  # noqa: F401 - the same format as the real one

        candidate = np.array([[x, y, 1.0, i] for i, (x, y) in enumerate(self.points.values())])
        subset = -np.ones((1, 20))
        for i, part in enumerate(self.points):
            subset[0, part] = i
        subset[0, 18:] = (len(self.points), len(self.points))
        return candidate, subset

    @staticmethod
    def format_body_result(candidate, subset):
        from controlnet_aux.open_pose import Body

        return Body.format_body_result(candidate, subset)


def test_openpose_draws_what_its_body_detector_finds(cn_models, tmp_path, photo):
    """The detector part is leased through the model manager; the map is the found keypoints drawn."""
    from studio.config import Settings
    from studio.wiring import build_studio

    studio = build_studio(Settings(models_dir=cn_models, outputs_dir=tmp_path, offline=True, device="cpu"))
    found = {0: (64.0, 20.0), 1: (64.0, 40.0), 2: (44.0, 40.0), 5: (84.0, 40.0)}      # nose, neck, shoulders
    studio.models.component("preprocessor", pose.PARTS["body"].key, build=lambda: ScriptedBody(found))
    unit = ControlUnit("pose", "x.png", preprocessor="openpose", resolution=96)
    made = studio.control_maps.make(unit, photo)
    people = (keypoints.Person(tuple((x / 128, y / 96) if i in found else None
                                     for i, (x, y) in ((i, found.get(i, (0, 0))) for i in range(18)))),)
    assert np.array_equal(px(made), px(keypoints.render(people, (128, 96), hands=False, face=False)))
    assert tuple(np.asarray(made)[20, 64]) == (255, 0, 0)                   # the nose, OpenPose's red
    assert np.asarray(made)[60:, :].max() == 0                               # nothing where no keypoint is


def test_openpose_with_the_real_detector_class_and_random_weights(cn_models, tmp_path, photo):
    """controlnet_aux's own Body network (random weights built in memory, ~52M parameters): it runs
    through the studio and, finding nobody in a gradient, draws an empty map of the working size."""
    import torch
    from controlnet_aux.open_pose import Body
    from controlnet_aux.open_pose.model import bodypose_model

    from studio.config import Settings
    from studio.wiring import build_studio

    studio = build_studio(Settings(models_dir=cn_models, outputs_dir=tmp_path, offline=True, device="cpu"))
    torch.manual_seed(0)
    body = Body.__new__(Body)
    body.model = bodypose_model().eval()
    studio.models.component("preprocessor", pose.PARTS["body"].key, build=lambda: body)
    made = studio.control_maps.make(ControlUnit("pose", "x.png", preprocessor="openpose", resolution=64), photo)
    assert made.size == (85, 64) and np.asarray(made).max() == 0             # short side 64
    row = next(c for c in studio.models.components() if c.path == pose.PARTS["body"].key)
    assert row.kind == "preprocessor" and row.bytes > 150_000_000          # the manager knows what it holds
