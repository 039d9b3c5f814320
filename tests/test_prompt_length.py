"""Prompt length: no encoder silently drops words (unit, on the offline tokenizers)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from studio.engine.runner import check_prompt_length
from studio.errors import InvalidRequest
from studio.models.catalog import FAMILIES
from studio.config import ROOT
from studio.requests import GenerationRequest

FLUX = FAMILIES["flux-schnell"]
PROMPT = "a red circle, highly detailed, 8k"     # demo tokenizers: 22 CLIP tokens, 8 T5 tokens


@pytest.fixture(scope="module")
def demo():
    """The demo model's own tokenizers (CLIP and T5 both read 16 tokens) and text encoders: the
    tokenizers are the generic fast class, so an encoder is named by the model it feeds."""
    from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

    folder = ROOT / "models" / "demo"
    return SimpleNamespace(tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer"),
                           tokenizer_2=AutoTokenizer.from_pretrained(folder / "tokenizer_2"),
                           text_encoder=CLIPTextModel.from_pretrained(folder / "text_encoder"),
                           text_encoder_2=T5EncoderModel.from_pretrained(folder / "text_encoder_2"))


def test_clip_truncation_is_refused_when_clip_reads_as_much_as_t5(demo):
    assert len(demo.tokenizer_2(PROMPT).input_ids) <= 16 < len(demo.tokenizer(PROMPT).input_ids)
    with pytest.raises(InvalidRequest) as info:
        check_prompt_length(demo, FLUX, GenerationRequest(PROMPT), 16, model_label="Demo (tiny FLUX)")
    assert info.value.field == "prompt" and "CLIP tokens long; Demo (tiny FLUX) reads at most 16" in str(info.value)


def test_a_shorter_clip_beside_t5_is_a_notice_and_t5_truncation_an_error(demo):
    flux_like, prompt = demo, PROMPT             # as FLUX: CLIP 77 beside T5 256, here 16 beside 64
    notices = check_prompt_length(flux_like, FLUX, GenerationRequest(prompt), 64, model_label="FLUX.1 schnell")
    assert len(notices) == 1 and notices[0].startswith("prompt: CLIP reads the first 16 of its")
    with pytest.raises(InvalidRequest, match="T5 tokens long; FLUX.1 schnell reads at most 64"):
        check_prompt_length(flux_like, FLUX, GenerationRequest("red " * 70), 64, model_label="FLUX.1 schnell")
    assert check_prompt_length(flux_like, FLUX, GenerationRequest("a red circle"), 64, model_label="x") == []
