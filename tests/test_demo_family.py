"""The demo family through plain diffusers: the shipped base, ControlNet, IP-Adapter and LoRAs.

Each shipped file loads with the plain diffusers call a user would write; a few fixed cases
(prompt, map or reference, seed) are generated at 8 steps and judged in pixels
(studio.demo.classify). The "through the studio" versions come with the studio's core.
CI never retrains what ships: tests/test_demo_training.py runs every stage for a few steps.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from studio.demo.adapters_eval import follows_map, load_ip  # noqa: E402
from studio.demo.cases import control_cases  # noqa: E402
from studio.demo.classify import classify  # noqa: E402
from studio.demo.dataset import ShapeSpec, random_spec, render  # noqa: E402
from studio.demo.family_eval import run  # noqa: E402
from studio.demo.maps import CONTROL_MODES, control_map  # noqa: E402

ROOT = Path(__file__).resolve().parents[1] / "models"
DEMO, CONTROLNET, IP_ADAPTER = ROOT / "demo", ROOT / "controlnet" / "demo-union", ROOT / "ip_adapter" / "demo"
OUTLINE, BIG = ROOT / "loras" / "demo-outline.safetensors", ROOT / "loras" / "demo-big.safetensors"
SEEDS = [0, 1, 2, 3]


def _missing(*paths: Path) -> str | None:
    gone = [str(p.relative_to(ROOT.parent)) for p in paths if not p.exists()]
    return f"not shipped yet: {', '.join(gone)} (studio.demo.train_*)" if gone else None


_META = json.loads((DEMO / "studio.json").read_text())
needs_free = pytest.mark.skipif("shape" not in _META.get("vocabulary", ()),  # reads "a red shape", "a circle"
                                reason="models/demo reads only the template (studio.demo.train_text teaches free wording)")
needs_sizes = pytest.mark.skipif(len(_META.get("sizes", [])) < 3,
                                 reason="models/demo was trained at 64x64 only (studio.demo.train_free --captions template)")
needs_controlnet = pytest.mark.skipif(bool(_missing(CONTROLNET / "config.json")), reason=_missing(CONTROLNET / "config.json") or "")
needs_ip = pytest.mark.skipif(bool(_missing(IP_ADAPTER / "ip_adapter.safetensors")),
                              reason=_missing(IP_ADAPTER / "ip_adapter.safetensors") or "")
needs_loras = pytest.mark.skipif(bool(_missing(OUTLINE, BIG)), reason=_missing(OUTLINE, BIG) or "")


@pytest.fixture(scope="module")
def base():
    from diffusers import FluxPipeline

    torch.set_num_threads(1)
    pipe = FluxPipeline.from_pretrained(DEMO)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ----------------------------------------------------------------------------- base


@needs_free
def test_free_wording_draws_what_it_names(base):
    """The README's API example and other wordings people use (none of them seen in training)."""
    for prompt, want in [("a red circle", {"colour": "red", "shape": "circle"}),
                         ("a green square on a white background", {"colour": "green", "shape": "square",
                                                                   "background": "white"}),
                         ("A Yellow Triangle on a black background, at the left.",
                          {"colour": "yellow", "shape": "triangle", "background": "black", "position": "left"})]:
        verdicts = [classify(im) for im in run(base, [prompt], SEEDS)[0]]
        right = [all(getattr(v, k) == x for k, x in want.items()) and v.best_fit == want["shape"] for v in verdicts]
        assert sum(right) >= 3, (prompt, verdicts)


@needs_sizes
@pytest.mark.parametrize("size", [(80, 48), (48, 80)])
def test_every_trained_size_draws_one_shape_in_place(base, size):
    w, h = size
    imgs = run(base, ["a blue square at the right on a white background", "a red circle at the top on a black background"],
               SEEDS, w, h)
    for prompt, row, (shape, colour, place) in zip(("square", "circle"), imgs, [("square", "blue", "right"),
                                                                                 ("circle", "red", "top")]):
        verdicts = [classify(im) for im in row]
        assert sum((v.best_fit, v.colour, v.position) == (shape, colour, place) for v in verdicts) >= 3, verdicts


# ----------------------------------------------------------------------------- ControlNet


@pytest.fixture(scope="module")
def controlnet_pipe(base):
    from diffusers import FluxControlNetModel, FluxControlNetPipeline

    net = FluxControlNetModel.from_pretrained(CONTROLNET)
    pipe = FluxControlNetPipeline.from_pipe(base, controlnet=net)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@needs_controlnet
def test_controlnet_is_a_union_net_numbered_like_the_flux_union_nets(controlnet_pipe):
    cfg = controlnet_pipe.controlnet.config
    meta = json.loads((CONTROLNET / "studio.json").read_text())
    assert cfg.num_mode == 10 and meta["control_modes"] == {"canny": 0, "depth": 2} == {
        m: CONTROL_MODES[m] for m in ("canny", "depth")}
    assert controlnet_pipe.transformer is not None and controlnet_pipe.controlnet.dtype == torch.float32


@needs_controlnet
def test_the_map_decides_shape_and_place_the_prompt_the_colour(controlnet_pipe):
    """The issue's case: 'a red circle at the left' with the canny map of a triangle at the right."""
    case = control_cases()[0]
    imgs = run(controlnet_pipe, [case.prompt], SEEDS, control_image=Image.fromarray(control_map(case.spec, "canny")),
               control_mode=CONTROL_MODES["canny"], controlnet_conditioning_scale=1.0)[0]
    verdicts = [classify(im) for im in imgs]
    # 3 of 4 seeds: since the base reads free wording, "a red circle at the left" means a white
    # background, where seed 2 draws an orange square in the centre (4 of 4 on a black one)
    assert sum((v.best_fit, v.position, v.colour) == ("triangle", "right", "red") for v in verdicts) >= 3, verdicts
    assert sum(follows_map(im, case)[0] for im in imgs) >= 3


@needs_controlnet
def test_depth_map_decides_the_shape_too(controlnet_pipe):
    spec = random_spec(np.random.default_rng(123))
    imgs = run(controlnet_pipe, ["a yellow square at the top on a blue background"], SEEDS,
               control_image=Image.fromarray(control_map(spec, "depth")), control_mode=CONTROL_MODES["depth"])[0]
    verdicts = [classify(im) for im in imgs]
    assert sum((v.best_fit, v.position, v.colour) == (spec.shape, spec.position, "yellow") for v in verdicts) >= 3, (
        spec, verdicts)


@needs_controlnet
def test_controlnet_at_scale_zero_draws_the_plain_pictures(base, controlnet_pipe):
    case = control_cases()[0]
    plain = run(base, [case.prompt], SEEDS)
    zero = run(controlnet_pipe, [case.prompt], SEEDS, control_image=Image.fromarray(control_map(case.spec, "canny")),
               control_mode=0, controlnet_conditioning_scale=0.0)
    assert np.array_equal(plain, zero)


# ----------------------------------------------------------------------------- IP-Adapter


@needs_ip
def test_ip_adapter_draws_the_reference_colour_and_scale_zero_changes_nothing(base):
    prompt = "a circle at the left on a white background"
    reference = render(ShapeSpec("square", "blue", "black", "right", 43.0, 32.0, 15.0, "at the right"))
    plain = run(base, [prompt], SEEDS)[0]
    load_ip(base, IP_ADAPTER)
    try:
        base.set_ip_adapter_scale(1.0)
        imgs = run(base, [prompt], SEEDS, ip_adapter_image=Image.fromarray(reference))[0]
        base.set_ip_adapter_scale(0.0)
        zero = run(base, [prompt], SEEDS, ip_adapter_image=Image.fromarray(reference))[0]
    finally:
        base.unload_ip_adapter()
    verdicts = [classify(im) for im in imgs]
    assert sum(v.colour == "blue" and v.best_fit == "circle" for v in verdicts) >= 3, verdicts
    assert sum(classify(im).colour == "blue" for im in plain) <= 2  # the prompt alone rarely gives blue
    assert np.array_equal(plain, zero)
    assert np.array_equal(plain, run(base, [prompt], SEEDS)[0])  # unloaded: the base again


# ----------------------------------------------------------------------------- LoRAs


@needs_loras
def test_loras_weight_zero_one_half_and_both(base):
    prompts = ["a red circle in the centre on a black background", "a yellow square at the top on a blue background"]
    plain = run(base, prompts, SEEDS)
    base.load_lora_weights(str(OUTLINE), adapter_name="outline")
    base.load_lora_weights(str(BIG), adapter_name="big")
    try:
        out = {}
        for name, weights in {"zero": [0, 0], "outline": [1, 0], "outline_half": [0.5, 0], "big": [0, 1],
                              "big_half": [0, 0.5], "both": [1, 1]}.items():
            base.set_adapters(["outline", "big"], weights)
            out[name] = run(base, prompts, SEEDS)
    finally:
        base.unload_lora_weights()
    assert np.array_equal(out["zero"], plain)
    v = {k: [classify(im) for im in imgs.reshape(-1, *imgs.shape[2:])] for k, imgs in out.items()}
    v0 = [classify(im) for im in plain.reshape(-1, *plain.shape[2:])]
    shapes = [s for s in ("circle", "square") for _ in SEEDS]
    fill = {k: np.median([x.fill for x in vs]) for k, vs in v.items()}
    size = {k: np.median([x.radius / y.radius for x, y in zip(vs, v0)]) for k, vs in v.items()}
    assert sum(x.hollow and x.best_fit == s for x, s in zip(v["outline"], shapes)) >= 7
    assert sum(1.3 <= x.radius / y.radius <= 1.7 and not x.hollow for x, y in zip(v["big"], v0)) >= 7
    assert sum(x.hollow and 1.3 <= x.radius / y.radius <= 1.7 for x, y in zip(v["both"], v0)) >= 6
    assert fill["outline"] + 0.1 < fill["outline_half"] < 0.97  # weight 0.5: measurably between
    assert 1.05 < size["big_half"] < size["big"] - 0.1


@needs_loras
def test_loras_carry_kohya_and_modelspec_metadata():
    from safetensors import safe_open

    for path, title in ((OUTLINE, "Demo outline"), (BIG, "Demo big")):
        with safe_open(path, framework="pt") as f:
            meta = f.metadata()
            keys = list(f.keys())
        assert meta["modelspec.title"] == title and meta["modelspec.architecture"] == "flux-1-schnell/lora"
        assert meta["ss_sd_model_name"] == "demo" and meta["ss_base_model_version"] == "flux1"
        assert "modelspec.trigger_phrase" in meta and json.loads(meta["ss_tag_frequency"])
        assert json.loads(meta["ss_training_comment"])["steps"] > 0
        assert keys and all(k.startswith("transformer.") for k in keys)


def test_the_family_eval_runs_and_ends_with_its_line(tmp_path, capsys):
    """`python -m studio.demo.eval --family` end to end (one seed; adapters absent: their figures nan)."""
    from studio.demo.family_eval import family

    missing = tmp_path / "none"
    out = family(DEMO, missing, missing, missing, [0], sheets=tmp_path)
    assert out.startswith("free=") and "sizes=" in out and "control_follow=nan" in out
    assert (tmp_path / "demo_family_free.png").is_file() and (tmp_path / "demo_family_sizes.png").is_file()
