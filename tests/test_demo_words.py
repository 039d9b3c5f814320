"""Demo prompts as people write them: wordings, held-out eval prompts, tokenizers, notices.

No torch model is needed here except the offline tokenizers (built in memory).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from studio.demo import components as C  # noqa: E402
from studio.demo.captions import FREE_EVAL, Parts, all_captions, compose, random_caption, template_caption  # noqa: E402
from studio.demo.cases import HELD_OUT, control_cases, ip_cases, lora_cases  # noqa: E402
from studio.demo.dataset import first_words, make_specs, vocabulary  # noqa: E402
from studio.models.notices import trained_sizes, unknown_words  # noqa: E402

MODEL = Path(__file__).resolve().parents[1] / "models" / "demo"


def test_compose_covers_every_wording_people_use():
    parts = Parts("orange", "circle", "centre", "blue")
    assert compose(parts) == "an orange circle in the centre on a blue background"
    assert compose(parts, place_last=True, phrase=1) == "an orange circle on a blue background in the center"
    assert compose(parts, wrong_article=True).startswith("a orange circle")
    assert compose(Parts("red", "circle")) == "a red circle"
    assert compose(Parts(None, "square", "left", None)) == "a square at the left"
    assert compose(Parts("red", None, None, "white")) == "a red shape on a white background"
    assert compose(Parts()) == "a shape"


def test_random_captions_leave_parts_out_and_never_draw_an_eval_prompt():
    rng = np.random.default_rng(0)
    specs = make_specs(4000, seed=3)
    captions = [random_caption(s, rng) for s in specs]
    assert not set(captions) & HELD_OUT
    assert set(captions) <= set(all_captions())
    assert any(c.endswith("background") and " at the " in c for c in captions)  # place first
    assert any(" at the " in c and not c.endswith("background") and "background" in c for c in captions)  # place last
    assert any("center" in c for c in captions) and any("centre" in c for c in captions)
    assert any(c.split()[:2] == ["a", "shape"] for c in captions)
    # every caption tells the truth about its picture, for the parts it names
    for spec, caption in zip(specs[:300], captions[:300]):
        assert spec.shape in caption or "shape" in caption
        assert f"on a {spec.background} background" in caption or "background" not in caption


def test_template_captions_keep_the_template_order_and_leave_out_only_what_keep_says():
    rng = np.random.default_rng(0)
    specs = make_specs(2000, seed=4)
    full = [template_caption(s, rng) for s in specs]
    no_colour = [template_caption(s, rng, keep={"colour": 0.0}) for s in specs]
    assert not (set(full) | set(no_colour)) & HELD_OUT
    assert all(spec.colour in a.split()[1] and spec.shape in a and spec.background in a for spec, a in zip(specs, full))  # noqa: E501
    assert np.mean([a.endswith(f"on a {spec.background} background") for spec, a in zip(specs, full)]) > 0.95
    left_out = [b.split()[1] == spec.shape and f"on a {spec.background} background" in b for spec, b in zip(specs, no_colour)]
    assert np.mean(left_out) > 0.98  # the rest: held-out wordings, given in full


def test_eval_cases_are_fixed_and_include_the_issue_cases():
    assert ("a red circle", Parts("red", "circle")) in FREE_EVAL
    first = control_cases()[0]
    assert (first.prompt, first.spec.shape, first.spec.position, first.mode) == (
        "a red circle at the left", "triangle", "right", "canny")
    assert all("red" not in c.prompt.split() or True for c in ip_cases())
    assert all(not any(col in c.prompt.split()[:2] for col in ("red", "green", "blue", "yellow", "purple", "orange",
                                                                 "white")) for c in ip_cases())
    assert control_cases() == control_cases() and ip_cases() == ip_cases() and lora_cases() == lora_cases()
    assert len(HELD_OUT) >= 90


def test_tokenizers_read_capitals_and_punctuation_as_the_plain_words():
    clip, t5 = C.build_clip_tokenizer(), C.build_t5_tokenizer()
    for tok in (clip, t5):
        assert tok("A Red circle, at the LEFT.").input_ids == tok("a red circle at the left").input_ids
    assert t5.unk_token_id not in t5("an orange shape in the center").input_ids
    assert len(clip("an orange shape in the center").input_ids) == 6 + 2  # one token a word (CLIP's unk is its eos)
    # the first words keep the ids the first model was trained with (sorted order, then added words)
    assert [t5.convert_tokens_to_ids("\u2581" + w) for w in first_words()] == list(range(3, 3 + len(first_words())))


def test_unknown_words_lists_each_unknown_word_once_in_order():
    words = vocabulary()
    assert unknown_words("a red circle at the left on a blue background", words) == []
    assert unknown_words("A big red Circle, big and shiny!", words) == ["big", "and", "shiny"]
    assert unknown_words("a purple cat", set(words)) == ["cat"]


_META = json.loads((MODEL / "studio.json").read_text())


@pytest.mark.skipif("shape" not in _META["vocabulary"],
                    reason="models/demo reads only the template (studio.demo.train_text teaches free wording)")
def test_shipped_studio_json_lists_its_words_and_template():
    assert set(_META["vocabulary"]) == set(vocabulary())
    assert "before or after the background" in _META["prompt_template"]
    assert all(not unknown_words(p, _META["vocabulary"]) for p in _META["example_prompts"])


@pytest.mark.skipif(len(_META.get("sizes", [])) < 3,
                    reason="models/demo was trained at 64x64 only (studio.demo.train_free --captions template)")
def test_shipped_studio_json_lists_its_sizes():
    assert trained_sizes(_META) == [(64, 64), (80, 48), (48, 80)]


@pytest.mark.parametrize("prompt", [c.prompt for c in control_cases()[:3]] + [p for p, _ in FREE_EVAL[:3]])
def test_eval_prompts_use_only_known_words(prompt):
    assert unknown_words(prompt, vocabulary()) == []
