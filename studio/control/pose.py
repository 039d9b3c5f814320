"""OpenPose (controlnet_aux's ``OpenposeDetector`` parts, weights from lllyasviel/Annotators): body,
optionally hands and face, as A1111's ``openpose`` / ``openpose_hand`` / ``openpose_face`` /
``openpose_full``. Each part is its own set of weights (``body_pose_model.pth``,
``hand_pose_model.pth``, ``facenet.pth``): only what the module draws is needed. The map is drawn
from the detected keypoints by ``keypoints.render`` (controlnet_aux's drawing code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from studio.control import keypoints
from studio.control.base import MapSettings, Part, Preprocessor
from studio.control.weights import Weights

REPO = "lllyasviel/Annotators"
FILES = {"body": "body_pose_model.pth", "hand": "hand_pose_model.pth", "face": "facenet.pth"}


def _load(kind: str):
    def load(folder: Path):
        import controlnet_aux.open_pose as op

        cls = {"body": op.Body, "hand": op.Hand, "face": op.Face}[kind]
        return cls(str(Path(folder) / FILES[kind]))

    return load


PARTS = {kind: Part(f"openpose/{name}", Weights(REPO, "openpose", f"OpenPose {kind} model", files=(name,)),
                    _load(kind))
         for kind, name in FILES.items()}


def detect(image: Image.Image, parts: dict) -> tuple[keypoints.Person, ...]:
    """People in ``image`` (normalised keypoints) with the parts given: ``body`` and, when there,
    ``hand`` and ``face``."""
    from controlnet_aux.open_pose import OpenposeDetector

    body, hand, face = (parts.get(PARTS[k].key) for k in ("body", "hand", "face"))
    detector = OpenposeDetector(body, hand, face)
    poses = detector.detect_poses(np.asarray(image.convert("RGB")), include_hand=hand is not None,
                                  include_face=face is not None)
    return keypoints.from_detected(poses)


def _preprocessor(name: str, label: str, *kinds: str) -> Preprocessor:
    def run(image: Image.Image, settings: MapSettings, parts: dict) -> Image.Image:
        people = detect(image, parts)
        return keypoints.render(people, image.size, hands="hand" in kinds, face="face" in kinds)

    return Preprocessor(name, "pose", label, run, parts=tuple(PARTS[k] for k in ("body", *kinds)))


POSE = (_preprocessor("openpose", "OpenPose body (default)"),
        _preprocessor("openpose_hand", "OpenPose body + hands", "hand"),
        _preprocessor("openpose_face", "OpenPose body + face", "face"),
        _preprocessor("openpose_full", "OpenPose body + hands + face", "hand", "face"))
