"""``<lora:name:weight>`` as A1111 reads it, the request's one weight range, the mixer's model and
named presets. Plain Python."""

from __future__ import annotations

import json
import math

import pytest

from studio.errors import InvalidRequest, StorageError
from studio.gallery.infotext import format_infotext, request_from_infotext
from studio.loras import mix
from studio.loras.mix import MixEntry
from studio.loras.presets import PresetStore
from studio.loras.tags import take, take_foreign, with_tags
from studio.requests import LIMITS, GenerationRequest, LoraSpec


@pytest.mark.parametrize("prompt, clean, tags", [
    ("a cat <lora:ink:0.8>", "a cat", (("ink", 0.8),)),
    ("a cat, <lora:ink:0.8>, on a mat", "a cat, on a mat", (("ink", 0.8),)),
    ("<lora:ink>, a cat", "a cat", (("ink", 1.0),)),
    ("<lora:ink:-1.5> <lora:film:0.5:0.5> cat", "cat", (("ink", -1.5), ("film", 0.5))),
    ("a <lora:styles/ink:te=0.7:unet=0.7> cat", "a cat", (("styles/ink", 0.7),)),
    ("a <LYCO:ink:1> cat <lora:ink:1>", "a cat", (("ink", 1.0),)),              # twice, same weight: once
    ("no tags here", "no tags here", ()),
])
def test_a1111_tags_come_out_of_the_prompt(prompt, clean, tags):
    assert take(prompt) == (clean, tags)


@pytest.mark.parametrize("prompt, message", [
    ("a <lora:ink:lots> cat", "prompt: <lora:ink:lots>: the weight 'lots' is not a number"),
    ("a <lora:ink:nan> cat", "prompt: <lora:ink:nan>: the weight must be a finite number"),
    ("a <lora::1> cat", "prompt: <lora::1> needs a LoRA name"),
    ("a <lora:ink:0.5:1> cat", "separate text-encoder and UNet weights (0.5 and 1) are not supported"),
    ("<lora:ink:0.5> <lora:ink:0.7>", "LoRA 'ink' is tagged twice with different weights (0.5 and 0.7)"),
])
def test_bad_tags_are_named(prompt, message):
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
        take(prompt)


def test_the_request_takes_tags_into_its_loras_and_they_must_agree_with_the_list():
    req = GenerationRequest("a red circle <lora:outline:0.5>", loras=(LoraSpec("big", 1.0),))
    assert req.prompt == "a red circle" and req.loras == (LoraSpec("big", 1.0), LoraSpec("outline", 0.5))
    assert GenerationRequest("x <lora:big:1>", loras=(LoraSpec("big", 1.0),)).loras == (LoraSpec("big", 1.0),)
    with pytest.raises(InvalidRequest, match=r"loras: <lora:big:0.5> in the prompt and big:1 in the LoRAs disagree"):
        GenerationRequest("x <lora:big:0.5>", loras=(LoraSpec("big", 1.0),))
    lo, hi = LIMITS["lora_weight"]
    for bad in (hi + 0.5, lo - 1):
        with pytest.raises(InvalidRequest, match=rf"loras: weight of 'big' must be within {lo}..{hi}, got {bad:g}"):
            GenerationRequest("x", loras=(LoraSpec("big", bad),))
        with pytest.raises(InvalidRequest, match=r"loras: weight of 'big' must be within"):
            GenerationRequest(f"x <lora:big:{bad}>")
    with pytest.raises(InvalidRequest, match="must be a finite number"):
        LoraSpec("big", math.nan)


def test_infotext_writes_the_tags_and_hashes_as_a1111_and_reads_them_back():
    req = GenerationRequest(" a cat ", seed=1, steps=2, guidance=0.0, width=64, height=64, model_id="demo",
                            scheduler="Euler", loras=(LoraSpec("ink", 0.8, "ab" * 32), LoraSpec("odd: name", 0.5)))
    text = format_infotext(req, 1)
    assert text.splitlines()[0] == " a cat  <lora:ink:0.8>"            # a name with ':' cannot be a tag
    assert 'Lora hashes: "ink: abababababab"' in text
    back = request_from_infotext(text)
    assert back.prompt == " a cat " and back.loras == (LoraSpec("ink", 0.8, "abababababab"), LoraSpec("odd: name", 0.5))
    # A1111's own: tags anywhere, hashes beside; a foreign tag never makes reading fail
    foreign = ('a cat, <lora:add_detail:te=0.4:unet=0.9>, <lora:film:x> on a mat\nSteps: 20, Sampler: Euler, '
               'CFG scale: 7, Seed: 1, Size: 512x512, Lora hashes: "add_detail: 7c6bad76eb54, film: 0123456789ab"')
    fields = request_from_infotext(foreign).loras
    assert fields == (LoraSpec("add_detail", 0.9, "7c6bad76eb54"), LoraSpec("film", 1.0, "0123456789ab"))
    assert take_foreign("x <lora:a:1>") == ("x", (("a", 1.0),)) and with_tags("", [LoraSpec("a")]) == "<lora:a:1>"


def test_mixer_text_and_switches():
    entries = mix.put((), "outline", 1.0)
    entries = mix.put(entries, "big", 0.5)
    entries = mix.toggle(entries, "outline")
    assert mix.to_text(entries) == "big:0.5"                          # off stays in the mixer, out of the text
    typed = mix.from_text("big:0.7, styles/ink:1", entries)
    assert typed == (MixEntry("big", 0.7), MixEntry("styles/ink", 1.0), MixEntry("outline", 1.0, on=False))
    assert mix.put(typed, "big", -2).count(MixEntry("big", -2.0)) == 1
    for bad in (2.5, math.nan, "1"):
        with pytest.raises(InvalidRequest, match="loras: weight of 'big' must be"):
            mix.put(typed, "big", bad)
    with pytest.raises(InvalidRequest, match="is not a LoRA name"):
        mix.put(typed, "../x", 1.0)
    tags, whole, problem = mix.effective("a cat <lora:outline:0.5>", "big:1")
    assert tags == (LoraSpec("outline", 0.5),) and whole == (LoraSpec("big", 1.0), LoraSpec("outline", 0.5))
    assert problem == ""
    assert "disagree" in mix.effective("a cat <lora:big:0.5>", "big:1")[2]


def test_presets_save_load_delete_and_bad_files(tmp_path):
    store = PresetStore(tmp_path / "lora-presets.json")
    entries = (MixEntry("outline", 1.0, hash="ab" * 32), MixEntry("big", 0.5, on=False))
    store.save("hollow and big", entries)
    assert store.names() == ["hollow and big"] and store.get("hollow and big") == entries
    assert json.loads((tmp_path / "lora-presets.json").read_text())["presets"]["hollow and big"]["loras"][0] == \
        {"name": "outline", "weight": 1.0, "on": True, "hash": "ab" * 32}
    with pytest.raises(InvalidRequest, match="preset: no preset named 'other'; saved ones: hollow and big"):
        store.get("other")
    with pytest.raises(InvalidRequest, match="the mix is empty"):
        store.save("empty", ())
    with pytest.raises(InvalidRequest, match="preset: give the preset a name"):
        store.save("  ", entries)
    assert store.delete("hollow and big") and store.names() == [] and not store.delete("hollow and big")
    (tmp_path / "lora-presets.json").write_text("{ not json")
    with pytest.raises(StorageError, match="is not a readable preset file"):
        store.names()
    blocked = PresetStore(tmp_path / "a-file" / "lora-presets.json")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(StorageError, match="The preset was not saved"):
        blocked.save("x", entries)
