"""Poses without a detector: OpenPose JSON in (OpenPose's and the openpose editor's), edited one
keypoint at a time, drawn by controlnet_aux's own code; the pixels are OpenPose's colours."""

from __future__ import annotations

import json

import numpy as np
import pytest

from studio.control import keypoints
from studio.errors import InvalidRequest

NOSE, NECK, R_SHOULDER = (0.5, 0.25), (0.5, 0.5), (0.25, 0.5)


def editor_json(points: dict[int, tuple[float, float]], width: int = 200, height: int = 100, n: int = 18) -> str:
    flat = []
    for i in range(n):
        x, y = points.get(i, (0, 0))
        flat += [x * width, y * height, 1.0 if i in points else 0.0]
    return json.dumps({"people": [{"pose_keypoints_2d": flat}], "canvas_width": width, "canvas_height": height})


def test_the_editor_format_reads_as_normalised_keypoints_and_back():
    people = keypoints.parse(editor_json({0: NOSE, 1: NECK, 2: R_SHOULDER}))
    assert len(people) == 1 and people[0].body[:3] == (NOSE, NECK, R_SHOULDER)
    assert people[0].body[3] is None and len(people[0].body) == 18 and people[0].left_hand is None
    assert keypoints.parse(keypoints.to_json(people, (200, 100))) == people


def test_openpose_body_25_and_normalised_and_sized_inputs():
    body25 = {0: NOSE, 1: NECK, 8: (0.5, 0.8), 9: (0.4, 0.8)}              # 8 is BODY_25's mid-hip: dropped
    people = keypoints.parse(editor_json(body25, n=25))
    assert people[0].body[8] == (0.4, 0.8) and sum(p is not None for p in people[0].body) == 3
    flat = [v for x, y in (NOSE, NECK) for v in (x, y, 1.0)] + [0.0] * 48
    assert keypoints.parse({"people": [{"pose_keypoints_2d": flat}]})[0].body[:2] == (NOSE, NECK)
    pixels = {"people": [{"pose_keypoints_2d": [320.0, 120.0, 0.9] + [0.0] * 51}]}     # OpenPose: no canvas
    assert keypoints.parse(pixels, size=(640, 480))[0].body[0] == (0.5, 0.25)


@pytest.mark.parametrize("text, message", [
    ("{not json", "keypoints: is not JSON"),
    ('{"animals": []}', 'keypoints: needs OpenPose JSON'),
    ('{"people": [{"pose_keypoints_2d": [1, 2, 3, 4]}]}', "must hold 54 or 75 numbers"),
    ('{"people": [{"pose_keypoints_2d": [' + ", ".join(["320"] * 54) + "]}]}", "no canvas_width"),
])
def test_bad_keypoints_say_what_is_wrong(text, message):
    with pytest.raises(InvalidRequest, match=message):
        keypoints.parse(text)


def test_move_places_one_keypoint_and_starts_from_a_standing_person():
    moved = keypoints.move((), "left wrist", 0.9, 1.4)
    assert moved[0].body[7] == (0.9, 1.0) and moved[0].body[:7] == keypoints.STANDING.body[:7]
    with pytest.raises(InvalidRequest, match="a body keypoint is one of nose, neck"):
        keypoints.move(moved, "tail", 0.5, 0.5)


def test_the_map_has_openpose_colours_where_the_keypoints_are():
    people = keypoints.parse(editor_json({0: NOSE, 1: NECK, 2: R_SHOULDER}))
    image = keypoints.render(people, (200, 100))
    arr = np.asarray(image)
    assert image.size == (200, 100) and image.mode == "RGB"
    assert tuple(arr[25, 100]) == (255, 0, 0)          # the nose: OpenPose's first colour
    assert tuple(arr[50, 100]) == (255, 85, 0)         # the neck: its second
    assert tuple(arr[50, 75]) == (153, 0, 0)           # the neck-right shoulder limb: 0.6 x its colour
    assert arr[80:, :].max() == 0 and arr[:, 150:].max() == 0      # nothing where no keypoint is


def test_hands_and_face_are_drawn_when_asked():
    hand = [(0.7 + 0.01 * i, 0.6 + 0.01 * i) for i in range(21)]
    flat = [v for x, y in hand for v in (x * 200, y * 100, 1.0)]
    data = json.loads(editor_json({0: NOSE, 1: NECK}))
    data["people"][0]["hand_left_keypoints_2d"] = flat
    people = keypoints.parse(json.dumps(data))
    drawn = np.asarray(keypoints.render(people, (200, 100)))
    bare = np.asarray(keypoints.render(people, (200, 100), hands=False))
    assert tuple(drawn[60, 140]) == (0, 0, 255)            # a hand joint: OpenPose's blue dot
    assert bare[55:, 130:].max() == 0
