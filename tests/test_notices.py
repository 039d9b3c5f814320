"""Notices, not errors: words a model does not know, sizes it was not trained at, its presets."""

from __future__ import annotations

from studio.models import notices

DEMO_LIKE = {"vocabulary": ["a", "red", "circle", "on", "blue", "background"], "prompt_template": "a <colour> <shape>",
             "sizes": ((64, 64), (80, 48), (48, 80))}


def test_unknown_words_are_named_with_the_template():
    text = notices.prompt_notice("A red cat, on a blue background!", "Demo", DEMO_LIKE)
    assert text.startswith("Demo does not know this word: 'cat'") and "a <colour> <shape>" in text
    assert notices.prompt_notice("a red circle", "Demo", DEMO_LIKE) is None
    assert notices.prompt_notice("anything at all", "SDXL", {}) is None          # no vocabulary: nothing to say


def test_untrained_sizes_draw_a_notice_and_presets_are_exactly_the_trained_sizes():
    assert notices.size_notice(80, 48, "Demo", DEMO_LIKE) is None
    assert "trained at 64x64, 80x48, 48x80 only; at 128x64" in notices.size_notice(128, 64, "Demo", DEMO_LIKE)
    assert notices.size_notice(128, 64, "SDXL", {}) is None
    assert notices.aspect_presets((64, 64), DEMO_LIKE) == {"1:1 (64x64)": (64, 64), "5:3 (80x48)": (80, 48),
                                                           "3:5 (48x80)": (48, 80)}
    generic = notices.aspect_presets((1024, 1024), {})
    assert generic["1:1"] == (1024, 1024) and generic["16:9"] == (1360, 768)


def test_the_studio_reports_them_with_the_result(tmp_path):
    from studio.config import ROOT, Settings
    from studio.requests import GenerationRequest
    from studio.wiring import build_studio

    studio = build_studio(Settings(models_dir=ROOT / "models", outputs_dir=tmp_path, offline=True, device="cpu"))
    result = studio.generate(GenerationRequest("a red cat", seed=1, steps=2, width=128, height=64))
    assert any("does not know this word: 'cat'" in n for n in result.notices)
    if studio.registry.get("demo").defaults.get("sizes"):
        assert any("at 128x64 it may draw" in n for n in result.notices)
    assert result.saved                                        # a notice, not an error: the image is made
