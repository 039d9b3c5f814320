"""ControlNet units in A1111's infotext form, both ways: ours read back equal, A1111's read right."""

from __future__ import annotations

from studio.gallery.infotext import format_infotext, request_from_infotext
from studio.requests import ControlUnit, GenerationRequest


def test_units_are_written_as_a1111_does_and_read_back_equal():
    req = GenerationRequest("a cat", model_id="sdxl", width=512, height=512, steps=20, guidance=5.0, seed=7,
                            scheduler="Euler", controls=(
                                ControlUnit("canny", "inputs/a.png", model="xinsir/controlnet-union-sdxl-1.0",
                                            mode="canny", scale=0.8, start=0.1, end=0.9, preprocessor="canny",
                                            resolution=768, map="inputs/m.png", pixel_perfect=True, threshold_a=50,
                                            threshold_b=120.5),
                                ControlUnit("pose", "inputs/p.png", preprocessor="none")))
    text = format_infotext(req, 7)
    assert ('ControlNet 0: "Module: canny, Model: xinsir/controlnet-union-sdxl-1.0, Weight: 0.8, Guidance Start: 0.1, '
            'Guidance End: 0.9, Type: canny, Mode: canny, Image: inputs/a.png, Map: inputs/m.png, Processor Res: 768, '
            'Threshold A: 50, Threshold B: 120.5, Pixel Perfect: True"') in text
    assert 'ControlNet 1: "Module: none, Model: pose, Weight: 1, Guidance Start: 0, Guidance End: 1, Type: pose, ' \
           'Image: inputs/p.png, Processor Res: 512"' in text
    assert request_from_infotext(text) == req


def test_a1111_units_read_with_their_thresholds_only_where_they_mean_something():
    text = ("a dancer\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512, "
            'ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 0.6, '
            "Resize Mode: Crop and Resize, Processor Res: -1, Threshold A: 64.0, Threshold B: 128.0, "
            'Guidance Start: 0.0, Guidance End: 0.8, Pixel Perfect: True, Control Mode: Balanced, Image: c.png", '
            'ControlNet 1: "Module: depth_midas, Model: control_v11f1p_sd15_depth [cfd03158], Weight: 1.0, '
            'Processor Res: 384, Threshold A: 0.5, Threshold B: 0.5, Image: d.png"')
    canny, depth = request_from_infotext(text).controls
    assert (canny.type, canny.model, canny.preprocessor, canny.scale, canny.end) == \
        ("canny", "control_v11p_sd15_canny", "canny", 0.6, 0.8)
    assert (canny.threshold_a, canny.threshold_b, canny.pixel_perfect, canny.resolution) == (64.0, 128.0, True, 512)
    assert (depth.type, depth.preprocessor, depth.resolution, depth.threshold_a) == ("depth", "depth_midas", 384, None)
