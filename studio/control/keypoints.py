"""Poses as keypoints: OpenPose JSON in and out, editing one keypoint, and the map drawn with
controlnet_aux's own OpenPose drawing code (``open_pose.draw_poses``), which needs no weights.

Coordinates are normalised (0..1 of the width / height). The JSON is what OpenPose writes
(``people[i].pose_keypoints_2d`` = x, y, confidence triples in pixels; BODY_18 or BODY_25) and what
sd-webui-openpose-editor and A1111's ControlNet write (the same, plus ``canvas_width`` /
``canvas_height``). A keypoint of confidence 0 is missing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image

from studio.errors import InvalidRequest

BODY_PARTS = ("nose", "neck", "right shoulder", "right elbow", "right wrist", "left shoulder", "left elbow",
              "left wrist", "right hip", "right knee", "right ankle", "left hip", "left knee", "left ankle",
              "right eye", "left eye", "right ear", "left ear")
BODY_25_TO_18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)   # BODY_25 has mid-hip at 8
HAND_POINTS, FACE_POINTS = 21, 70
LISTS = {"pose_keypoints_2d": (18, 25), "hand_left_keypoints_2d": (HAND_POINTS,),
         "hand_right_keypoints_2d": (HAND_POINTS,), "face_keypoints_2d": (FACE_POINTS,)}
FIELD = "keypoints"
Point = tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class Person:
    body: tuple[Point, ...]                     # 18, COCO order (BODY_PARTS)
    left_hand: tuple[Point, ...] | None = None  # 21
    right_hand: tuple[Point, ...] | None = None
    face: tuple[Point, ...] | None = None       # 70


# A person standing, facing the viewer (their right side on the image's left)
STANDING = Person(body=((0.5, 0.18), (0.5, 0.28), (0.4, 0.28), (0.36, 0.42), (0.34, 0.55), (0.6, 0.28),
                        (0.64, 0.42), (0.66, 0.55), (0.44, 0.55), (0.43, 0.72), (0.42, 0.88), (0.56, 0.55),
                        (0.57, 0.72), (0.58, 0.88), (0.48, 0.16), (0.52, 0.16), (0.46, 0.17), (0.54, 0.17)))


def _points(values: Any, name: str, counts: tuple[int, ...], size: tuple[float, float]) -> tuple[Point, ...] | None:
    if not values:
        return None
    if not isinstance(values, list) or len(values) % 3 or len(values) // 3 not in counts:
        sizes = " or ".join(str(3 * c) for c in counts)
        raise InvalidRequest(FIELD, f"{name} must hold {sizes} numbers (x, y, confidence per keypoint), got "
                                    f"{len(values) if isinstance(values, list) else type(values).__name__}")
    try:
        triples = [(float(values[i]), float(values[i + 1]), float(values[i + 2])) for i in range(0, len(values), 3)]
    except (TypeError, ValueError):
        raise InvalidRequest(FIELD, f"{name} must hold numbers only") from None
    if not all(math.isfinite(v) for t in triples for v in t):
        raise InvalidRequest(FIELD, f"{name} holds a number that is not finite")
    w, h = size
    return tuple((x / w, y / h) if c > 0 else None for x, y, c in triples)


def parse(text: str | dict | list, size: tuple[int, int] | None = None) -> tuple[Person, ...]:
    """OpenPose JSON -> people. Pixel coordinates are divided by the canvas size the JSON names,
    else by ``size`` (the image the pose belongs to); coordinates all within 0..1 are taken as
    normalised already. ``InvalidRequest`` (field ``keypoints``) says what is wrong."""
    try:
        data = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as err:
        raise InvalidRequest(FIELD, f"is not JSON ({err.msg} at line {err.lineno})") from None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]                                        # the editor's "export all" is a list
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise InvalidRequest(FIELD, 'needs OpenPose JSON: {"people": [{"pose_keypoints_2d": [x, y, c, ...]}], '
                                    '"canvas_width": W, "canvas_height": H}')
    for i, person in enumerate(data["people"]):            # shapes first: a bad list is named as such
        if not isinstance(person, dict):
            raise InvalidRequest(FIELD, f"people[{i}] must be an object")
        for key, counts in LISTS.items():
            _points(person.get(key), f"people[{i}].{key}", counts, (1.0, 1.0))
    numbers = [v for p in data["people"] for k, vs in p.items()
               if k in LISTS and isinstance(vs, list) for i, v in enumerate(vs) if i % 3 != 2]
    canvas = (data.get("canvas_width"), data.get("canvas_height"))
    if all(isinstance(v, (int, float)) and v > 0 for v in canvas):
        scale = (float(canvas[0]), float(canvas[1]))
    elif all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in numbers):
        scale = (1.0, 1.0)
    elif size is not None:
        scale = (float(size[0]), float(size[1]))
    else:
        raise InvalidRequest(FIELD, "holds pixel coordinates but no canvas_width / canvas_height; add them")
    people = []
    for i, person in enumerate(data["people"]):
        found = {key: _points(person.get(key), key, counts, scale) for key, counts in LISTS.items()}
        body = found["pose_keypoints_2d"]
        if body is None:
            continue
        if len(body) == 25:
            body = tuple(body[j] for j in BODY_25_TO_18)
        people.append(Person(body, found["hand_left_keypoints_2d"], found["hand_right_keypoints_2d"],
                             found["face_keypoints_2d"]))
    return tuple(people)


def to_json(people: tuple[Person, ...], size: tuple[int, int]) -> str:
    """People -> the editor's JSON (pixels of ``size``, canvas named), which ``parse`` reads back."""
    w, h = size

    def flat(points: tuple[Point, ...] | None) -> list[float]:
        out: list[float] = []
        for p in points or ():
            out += [round(p[0] * w, 2), round(p[1] * h, 2), 1.0] if p is not None else [0.0, 0.0, 0.0]
        return out

    people = [{"pose_keypoints_2d": flat(p.body), "hand_left_keypoints_2d": flat(p.left_hand),
               "hand_right_keypoints_2d": flat(p.right_hand), "face_keypoints_2d": flat(p.face)} for p in people]
    return json.dumps({"people": people, "canvas_width": w, "canvas_height": h})


def move(people: tuple[Person, ...], part: str | int, x: float, y: float, person: int = 0) -> tuple[Person, ...]:
    """``people`` with one body keypoint (a name of BODY_PARTS or its index) at (x, y), normalised.
    No people yet: a standing person is the start."""
    index = BODY_PARTS.index(part) if part in BODY_PARTS else part if isinstance(part, int) else -1
    if not 0 <= index < len(BODY_PARTS):
        raise InvalidRequest(FIELD, f"a body keypoint is one of {', '.join(BODY_PARTS)}; got {part!r}")
    people = tuple(people) or (STANDING,)
    if not 0 <= person < len(people):
        raise InvalidRequest(FIELD, f"there are {len(people)} people; got person {person}")
    body = list(people[person].body)
    body[index] = (min(1.0, max(0.0, float(x))), min(1.0, max(0.0, float(y))))
    return people[:person] + (replace(people[person], body=tuple(body)),) + people[person + 1:]


def from_detected(poses) -> tuple[Person, ...]:  # noqa: ANN001 - controlnet_aux PoseResults
    """controlnet_aux's detections (normalised, hand/face points at -1 when missing) -> people."""
    def points(keypoints) -> tuple[Point, ...] | None:  # noqa: ANN001
        if keypoints is None:
            return None
        return tuple((float(k.x), float(k.y)) if k is not None and k.x >= 0 and k.y >= 0 else None
                     for k in keypoints)

    return tuple(Person(points(p.body.keypoints), points(p.left_hand), points(p.right_hand), points(p.face))
                 for p in poses)


def render(people: tuple[Person, ...], size: tuple[int, int], *, hands: bool = True, face: bool = True) -> Image.Image:
    """The OpenPose map (black background, coloured limbs and joints) of ``size`` (width, height):
    bodies and faces by controlnet_aux's ``draw_poses``, hands by ``_draw_hand`` (see there)."""
    from controlnet_aux.open_pose import BodyResult, Keypoint, PoseResult, draw_poses
    from controlnet_aux.open_pose.util import draw_facepose

    def keypoints(points: tuple[Point, ...] | None, missing_as_none: bool):
        if points is None:
            return None
        return [Keypoint(*p) if p is not None else (None if missing_as_none else Keypoint(-1.0, -1.0))
                for p in points]

    poses = [PoseResult(BodyResult(keypoints(p.body, True), 0.0, sum(x is not None for x in p.body)),
                        keypoints(p.left_hand, False), keypoints(p.right_hand, False), keypoints(p.face, False))
             for p in people]
    w, h = size
    canvas = draw_poses(poses, h, w, draw_body=True, draw_hand=False, draw_face=False)
    for pose in poses:                        # draw_poses' order: bodies, then hands, then faces
        if hands:
            for hand in (pose.left_hand, pose.right_hand):
                canvas = _draw_hand(canvas, hand)
        if face:
            canvas = draw_facepose(canvas, pose.face)
    return Image.fromarray(canvas, "RGB")


def _draw_hand(canvas, points):  # noqa: ANN001 - numpy HxWx3, controlnet_aux Keypoints
    """controlnet_aux's ``util.draw_handpose``, line for line, with the standard library's
    ``colorsys`` for the one call it makes to matplotlib (not a dependency of the studio, and
    imported by that function even to draw no hand)."""
    import colorsys

    import cv2

    if not points:
        return canvas
    h, w, _ = canvas.shape
    eps = 0.01
    edges = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [0, 9], [9, 10], [10, 11], [11, 12],
             [0, 13], [13, 14], [14, 15], [15, 16], [0, 17], [17, 18], [18, 19], [19, 20]]
    for i, (a, b) in enumerate(edges):
        x1, y1, x2, y2 = int(points[a].x * w), int(points[a].y * h), int(points[b].x * w), int(points[b].y * h)
        if x1 > eps and y1 > eps and x2 > eps and y2 > eps:
            colour = [c * 255 for c in colorsys.hsv_to_rgb(i / float(len(edges)), 1.0, 1.0)]
            cv2.line(canvas, (x1, y1), (x2, y2), colour, thickness=2)
    for point in points:
        x, y = int(point.x * w), int(point.y * h)
        if x > eps and y > eps:
            cv2.circle(canvas, (x, y), 4, (0, 0, 255), thickness=-1)
    return canvas
