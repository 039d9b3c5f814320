"""Every binder keyword against the real ``__call__`` of every pipeline class in the catalog."""

from __future__ import annotations

import inspect

import pytest

from studio.engine import binders
from studio.engine.binders import Inputs
from studio.errors import InvalidRequest
from studio.models.catalog import FAMILIES
from studio.requests import ControlUnit, GenerationRequest, ImagePrompt, Task

CASES = [(name, task, controlled) for name, family in FAMILIES.items() for (task, controlled) in family.pipes]


def signature(cls_name: str) -> set[str]:
    import diffusers

    return set(inspect.signature(getattr(diffusers, cls_name).__call__).parameters) - {"self"}


def full_request(family, task: Task, controlled: bool) -> GenerationRequest:
    """A request with every modifier this pipeline can take."""
    spec = family.pipe(task, controlled)
    images = {"init_image": "i.png"} if task is not Task.TXT2IMG else {}
    if task is Task.INPAINT:
        images["mask_image"] = "m.png"
    return GenerationRequest(
        "a cat", task=task, negative_prompt="blurry" if family.supports_negative and spec.negative else "",
        width=64, height=64, steps=2, guidance=1.0, seed=1, strength=0.5 if task is not Task.TXT2IMG else None,
        controls=(ControlUnit("canny", "c.png"), ControlUnit("depth", "d.png")) if controlled else (),
        image_prompts=(ImagePrompt(("a.png", "b.png")),) if spec.ip_adapter else (),
        references=("r.png",) if spec.references else (), **images)


@pytest.mark.parametrize("name, task, controlled", CASES, ids=[f"{n}-{t.value}{'-cn' if c else ''}" for n, t, c in CASES])
def test_binders_pass_only_keywords_the_class_takes(name, task, controlled):
    family = FAMILIES[name]
    spec = family.pipe(task, controlled)
    req = full_request(family, task, controlled)
    assert binders.check(family, req) is spec
    n_units = len(req.controls)
    inputs = Inputs(init="I", mask="M", control_maps=("C",) * n_units,
                    union=(bool(family.control_modes) and spec.control_mode,) * n_units,
                    image_prompts=(("A", "B"),) if req.image_prompts else (), references=("R",))
    kwargs = binders.bind(family, spec, req, inputs, max_sequence_length=family.max_sequence_length)
    takes = signature(spec.cls)
    assert set(kwargs) <= takes, sorted(set(kwargs) - takes)
    # the flags the binders read tell the truth about the class
    import diffusers

    cls = getattr(diffusers, spec.cls)
    assert spec.size == ({"height", "width"} <= takes)
    assert spec.true_cfg == ("true_cfg_scale" in takes)
    assert spec.sequence_length == ("max_sequence_length" in takes)
    assert spec.control_mode == ("control_mode" in takes)
    assert spec.ip_adapter == (hasattr(cls, "load_ip_adapter") and "ip_adapter_image" in takes)
    assert not spec.negative or "negative_prompt" in takes
    assert (spec.control_arg in takes) if controlled else not spec.control_arg
    for key in ("image", "mask_image", "strength"):
        assert (key in kwargs) == (key in {Task.IMG2IMG: {"image", "strength"},
                                           Task.INPAINT: {"image", "mask_image", "strength"}}.get(task, set())
                                   or (key == "image" and (spec.references or spec.control_arg == "image")))


def test_sd_img2img_takes_no_size_and_flux_img2img_does():
    sd = FAMILIES["sd15"].pipe(Task.IMG2IMG)
    req = GenerationRequest("x", task=Task.IMG2IMG, init_image="i.png", width=64, height=64, strength=0.5)
    assert "height" not in binders.bind(FAMILIES["sd15"], sd, req, Inputs(init="I"), max_sequence_length=None)
    flux = FAMILIES["flux-schnell"].pipe(Task.IMG2IMG)
    assert binders.bind(FAMILIES["flux-schnell"], flux, req, Inputs(init="I"), max_sequence_length=32)["height"] == 64


def test_union_modes_follow_the_catalog_numbering():
    family = FAMILIES["flux-schnell"]
    spec = family.pipe(Task.TXT2IMG, True)
    req = GenerationRequest("x", controls=(ControlUnit("canny", "c.png"), ControlUnit("depth", "d.png", mode="depth")))
    kw = binders.bind_controls(family, spec, req, Inputs(control_maps=("C", "D"), union=(True, True)))
    assert kw["control_mode"] == [0, 2] and kw["control_image"] == ["C", "D"]
    with pytest.raises(InvalidRequest, match="no 'scribble' mode"):
        binders.bind_controls(family, spec, GenerationRequest("x", controls=(ControlUnit("scribble", "s.png"),)),
                              Inputs(control_maps=("S",), union=(True,)))


@pytest.mark.parametrize("family, kwargs, field", [
    ("sd3", {"task": Task.IMG2IMG, "init_image": "i.png", "controls": (ControlUnit("canny", "c.png"),)}, "controls"),
    ("flux2", {"task": Task.INPAINT, "init_image": "i.png", "mask_image": "m.png"}, "task"),
    ("flux2", {"image_prompts": (ImagePrompt(("a.png",)),)}, "image_prompts"),
    ("flux-schnell", {"references": ("r.png",)}, "references"),
    ("flux2", {"references": tuple(f"{i}.png" for i in range(10)) + ()}, None),
    ("flux-schnell", {"negative_prompt": "blurry"}, "negative_prompt"),
    ("flux-dev", {"negative_prompt": "blurry", "task": Task.IMG2IMG, "init_image": "i.png",
                  "controls": (ControlUnit("canny", "c.png"),)}, "negative_prompt"),
    ("flux-dev", {"image_prompts": (ImagePrompt(("a.png",)),), "task": Task.IMG2IMG, "init_image": "i.png",
                  "controls": (ControlUnit("canny", "c.png"),)}, "image_prompts"),
])
def test_what_a_family_cannot_serve_is_named_before_any_load(family, kwargs, field):
    req = GenerationRequest("x", **kwargs)
    if field is None:
        binders.check(FAMILIES[family], req)
        return
    with pytest.raises(InvalidRequest) as info:
        binders.check(FAMILIES[family], req)
    assert info.value.field == field


def test_the_architecture_doc_shows_the_catalog_as_it_is():
    from studio.config import ROOT
    from studio.models.catalog import capability_table

    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    shown = doc.split("<!-- capability table: begin -->", 1)[1].split("<!-- capability table: end -->", 1)[0]
    assert shown.strip() == capability_table()
