"""Control units -> the nets they run through and the maps they read. Plain Python, no torch.

- ``nets_for``: each unit's ControlNet (the registry checks its family and that it is there) and
  its mode number on that net; what cannot work is ``InvalidRequest`` naming the unit.
- ``shared`` / ``union_pipes``: how the manager combines them (several modes of one union net run
  as that one net; SDXL union nets have pipelines of their own and run beside nothing else).
- ``with_resolutions``: pixel perfect units get the working resolution of the output size.
- ``MapMaker``: preprocessors with their detector weights leased from the model manager.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from PIL import Image

from studio import control
from studio.control.base import Part, pixel_perfect
from studio.control.weights import locate
from studio.errors import InvalidRequest
from studio.models.catalog import Family
from studio.models.controlnets import ControlNetInfo
from studio.requests import ControlUnit, GenerationRequest

Net = tuple[ControlNetInfo, int]          # a unit's net and its mode number there (-1: not a union net)


def _unit(i: int) -> str:
    return f"unit {i + 1}"


def mode_number(net: ControlNetInfo, unit: ControlUnit, i: int) -> int:
    """The number of the unit's mode (its ``mode``, else its type) on ``net``."""
    name = unit.mode or unit.type
    if not net.union:
        if unit.mode and unit.mode != unit.type:
            raise InvalidRequest("controls", f"{_unit(i)}: ControlNet {net.name!r} is not a union net: it has no "
                                             f"modes; leave the mode empty")
        return -1
    if name not in net.modes:
        raise InvalidRequest("controls", f"{_unit(i)}: ControlNet {net.name!r} has no {name!r} mode; its modes: "
                                         f"{', '.join(net.modes) or 'none known'}")
    return net.modes[name]


def nets_for(registry, entry, request: GenerationRequest) -> tuple[Net, ...]:  # noqa: ANN001
    """(net, mode number) for every unit of ``request``, checked (scale-0 units too: the request keeps them)."""
    out = []
    for i, unit in enumerate(request.controls):
        control.preprocessor(unit.preprocessor)                 # an unknown name: refused here, before any work
        try:
            net = registry.controlnet(unit.model, entry, unit.type)
        except InvalidRequest as err:
            raise InvalidRequest("controls", f"{_unit(i)}: {str(err).removeprefix('controls: ')}") from None
        out.append((net, mode_number(net, unit, i)))
    return tuple(out)


def running_nets(request: GenerationRequest, nets: tuple[Net, ...]) -> tuple[Net, ...]:
    """The nets of the units that run (scale > 0, as ``service.running`` keeps them)."""
    return tuple(net for unit, net in zip(request.controls, nets, strict=True) if unit.scale > 0)


def shared(nets: tuple[Net, ...]) -> bool:
    """Several units on one union net: it is loaded once and runs every mode."""
    return len(nets) > 1 and nets[0][0].union and len({n.source for n, _ in nets}) == 1


def union_pipes(family: Family, nets: tuple[ControlNetInfo, ...]) -> bool:
    """Do the nets need the family's union pipelines (SDXL's ControlNetUnionModel)? Such nets run
    beside no other kind: mixing them is refused."""
    kind = family.union_controlnet_class
    union = [n.cls == kind for n in nets] if kind else []
    if any(union) and not all(union):
        raise InvalidRequest("controls", f"{family.label}: union nets ({kind}) run in pipelines of their own and "
                                         f"cannot run beside other ControlNets; use the union net's modes for every "
                                         f"unit, or other nets only")
    return any(union)


def with_resolution(unit: ControlUnit, size: tuple[int, int], store) -> ControlUnit:  # noqa: ANN001
    """A pixel perfect unit with the resolution that puts one map pixel on one output pixel."""
    if not unit.pixel_perfect or unit.map or control.preprocessor(unit.preprocessor) is None:
        return unit
    image_size = store.open(unit.image, "controls").size
    return dataclasses.replace(unit, resolution=pixel_perfect(image_size, size))


def with_resolutions(request: GenerationRequest, size: tuple[int, int], store) -> GenerationRequest:  # noqa: ANN001
    if not any(u.pixel_perfect for u in request.controls):
        return request
    return request.replace(controls=tuple(with_resolution(u, size, store) for u in request.controls))


class MapMaker:
    """``make(unit, image)``: the unit's map, or None when the image is the map. Detector weights
    are components of the model manager (``preprocessor`` kind, one load per part), found by
    ``control.weights.locate`` in the models folder or the hub cache."""

    def __init__(self, registry, models) -> None:  # noqa: ANN001
        self._registry, self._models = registry, models

    def detector(self, part: Part) -> Any:
        registry = self._registry

        def build():
            return part.load(locate(part.weights, registry.models_dir, offline=registry.offline))

        return self._models.component("preprocessor", part.key, build=build)

    def make(self, unit: ControlUnit, image: Image.Image) -> Image.Image | None:
        return control.make_map(unit, image, lease=self.detector)
