"""Form values -> requests, foreign values -> form values, and the UI's error edge (no Gradio server)."""

from __future__ import annotations

import math

import gradio as gr
import pytest

from studio import forms
from studio.errors import InvalidRequest
from studio.requests import LoraSpec
from studio.ui.errors import as_gr_error, shown_as_gr_error, without_temp_paths


@pytest.mark.parametrize("name, value, message", [
    ("width", float("nan"), "width: must be a finite number, got nan"),
    ("steps", "abc", "steps: must be a number, got 'abc'"),
    ("batch_count", math.inf, "batch_count: must be a finite number, got inf"),
    ("batch_size", 2.5, "batch_size: must be a whole number, got 2.5"),
    ("seed", True, "seed: must be a number, got True"),
])
def test_bad_numbers_name_the_field(name, value, message):
    with pytest.raises(InvalidRequest) as info:
        forms.number(name, value)
    assert str(info.value) == message and info.value.field == name


def test_numbers_pass_as_typed_and_empty_means_default():
    assert forms.number("width", "64") == 64 and forms.number("width", 64.0) == 64
    assert forms.number("guidance", "3.5", whole=False) == 3.5
    assert forms.number("steps", None) is None and forms.number("seed", "", default=-1) == -1
    assert forms.number("width", 100000) == 100000          # the request, not the form, bounds it


def test_lora_text_round_trip():
    loras = forms.parse_loras(" detail:0.5, style , other:-1 ")
    assert loras == (LoraSpec("detail", 0.5), LoraSpec("style", 1.0), LoraSpec("other", -1.0))
    assert forms.parse_loras(forms.format_loras(loras)) == loras
    with pytest.raises(InvalidRequest, match="loras: must be a number, got 'lots'"):
        forms.parse_loras("detail:lots")


def test_adapt_keeps_what_the_form_takes_and_names_the_rest():
    fields = {"prompt": "a fox", "model_id": "juggernaut", "width": 1000, "height": 512, "steps": 500,
              "guidance": 7, "seed": 2**64, "loras": (LoraSpec("detail", 0.5), {"name": "gone", "weight": 1})}
    adapted = forms.adapt(fields, models=["demo"], loras=["detail"])
    assert adapted.fields == {"prompt": "a fox", "width": 992, "height": 512, "guidance": 7.0,
                              "loras": (LoraSpec("detail", 0.5),)}
    text = " | ".join(adapted.problems)
    for named in ("model 'juggernaut' is not in this studio", "width 1000 became 992",
                  "steps: must be within 1..200, got 500", "seed: must be within", "LoRA 'gone'"):
        assert named in text, (named, text)
    assert forms.adapt({"prompt": "x", "model_id": "demo", "seed": -1}, models=["demo"], loras=[]).problems == ()


def test_user_errors_are_shown_plainly_and_bugs_keep_their_traceback():
    err = as_gr_error(InvalidRequest("width", "must be within 16..4096, got 100000"), "txt2img")
    assert err.message == "width: must be within 16..4096, got 100000" and not err.print_exception
    bug = as_gr_error(ZeroDivisionError("division by zero"), "txt2img")
    assert "This is a bug in the studio" in bug.message and bug.print_exception   # gradio prints it


def test_generator_handlers_are_wrapped_too():
    @shown_as_gr_error
    def handler():
        yield 1
        raise InvalidRequest("prompt", "too long")

    it = handler()
    assert next(it) == 1
    with pytest.raises(gr.Error, match="prompt: too long"):
        next(it)


def test_messages_never_show_temp_paths():
    import tempfile

    path = f"{tempfile.gettempdir()}/gradio/3f2a9c/holiday photo.png"
    assert without_temp_paths(f"cannot read {path}: not a PNG") == "cannot read holiday photo.png: not a PNG"
    assert without_temp_paths(f"'{tempfile.gettempdir()}/x/a.png'") == "'a.png'"
