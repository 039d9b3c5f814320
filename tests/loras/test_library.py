"""The LoRA library on real (tiny) files: what each one is, finding them by name and by hash,
bad files named and refused, hub LoRAs from the cache. No torch is needed to scan."""

from __future__ import annotations

import hashlib
import shutil
import struct
from pathlib import Path

import pytest

from studio.errors import InvalidRequest, ModelUnavailable
from studio.loras.library import LoraLibrary
from studio.models.catalog import FAMILIES


@pytest.fixture
def library(lora_models) -> LoraLibrary:
    return LoraLibrary(lora_models / "loras", offline=True)


@pytest.fixture
def own(lora_models, tmp_path) -> Path:
    """A LoRA folder of this test's own, with one good FLUX LoRA in it."""
    folder = tmp_path / "loras"
    folder.mkdir()
    shutil.copy(lora_models / "loras" / "flux-style.safetensors", folder / "good.safetensors")
    return folder


def test_every_lora_with_family_rank_layout_and_metadata(library):
    infos = {i.name: i for i in library.scan()}
    assert sorted(infos) == ["flux-second", "flux-style", "kohya/flux-kohya", "kohya/sd15-kohya", "kohya/sdxl-kohya",
                             "sd15-style", "sdxl-style"]
    families = {n: (i.families, i.layout, i.rank) for n, i in infos.items()}
    assert families["flux-style"] == (("flux1",), "diffusers", 4)
    assert families["kohya/flux-kohya"][1:] == ("kohya", 4) and "flux1" in families["kohya/flux-kohya"][0]
    assert families["sdxl-style"] == (("sdxl",), "diffusers", 4)          # its text_encoder_2 layers say SDXL
    assert families["kohya/sdxl-kohya"] == (("sdxl",), "kohya", 4)         # lora_te1_ / lora_te2_
    assert families["kohya/sd15-kohya"] == (("sd15",), "kohya", 4)         # lora_te_
    assert "sd15" in families["sd15-style"][0]                             # a tiny UNet alone: SD1.5 or SDXL
    style = infos["flux-style"]
    assert style.size == (library.folder / "flux-style.safetensors").stat().st_size
    assert (style.facts.title, style.facts.resolution, style.facts.trigger_words) == \
        ("Tiny style", "64x64", ("tinystyle", "bold lines"))
    assert style.facts.tags[0] == ("hollow", 30) and "tiny-flux" in style.facts.base_model
    assert style.facts.description.startswith("Makes") and style.preview.name == "flux-style.preview.png"
    assert not any(i.problem for i in infos.values())


def test_fits_says_why_a_lora_of_another_family_cannot_be_applied(library):
    sdxl = library.find("sdxl-style")
    ok, why = sdxl.fits(FAMILIES["flux-schnell"])
    assert not ok and why == "a Stable Diffusion XL LoRA (told from its keys); FLUX.1 schnell models cannot use it"
    assert sdxl.fits(FAMILIES["sdxl"]) == (True, "")
    assert library.find("flux-style").fits(FAMILIES["flux-dev"])[0]       # FLUX.1 LoRAs fit schnell and dev


def test_search_by_words_and_family(library):
    assert [i.name for i in library.search("tinystyle")] == ["flux-style"]        # a trigger word
    assert [i.name for i in library.search("hollow")] == ["flux-style"]           # a training tag
    # the tiny SD1.5 UNet LoRA could be either (its keys do not say): it is listed under both
    assert [i.name for i in library.search(family="sdxl")] == ["kohya/sdxl-kohya", "sd15-style", "sdxl-style"]
    assert [i.name for i in library.search("kohya", family="sd15")] == ["kohya/sd15-kohya"]


def test_names_subfolders_bare_names_and_ambiguity(library, own):
    assert library.find("flux-kohya").name == "kohya/flux-kohya"               # as A1111: the bare file name
    assert library.find("kohya/flux-kohya.safetensors").name == "kohya/flux-kohya"
    (own / "a").mkdir()
    (own / "b").mkdir()
    shutil.copy(own / "good.safetensors", own / "a" / "ink.safetensors")
    shutil.copy(own / "good.safetensors", own / "b" / "ink.safetensors")
    mine = LoraLibrary(own)
    with pytest.raises(InvalidRequest, match="'ink' is ambiguous: a/ink, b/ink"):
        mine.find("ink")
    assert mine.find("b/ink").path == own / "b" / "ink.safetensors"
    with pytest.raises(ModelUnavailable, match=r"LoRA 'nope' not found in .*loras \(found: a/ink, b/ink, good\)"):
        mine.find("nope")


@pytest.mark.parametrize("name", ["../flux-style", "kohya/../../secret", "/etc/passwd", "~/x", "C:\\loras\\x",
                                  "..\\x", "a//b", "owner/repo/../x.safetensors"])
def test_a_name_that_could_leave_the_folder_is_refused(library, name):
    with pytest.raises(InvalidRequest, match="loras: .* is not a LoRA name"):
        library.find(name)


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def test_bad_files_are_listed_with_what_is_wrong_and_refused_by_name(own):
    good = own / "good.safetensors"
    data = good.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    (own / "truncated.safetensors").write_bytes(data[:-100])
    (own / "empty.safetensors").write_bytes(b"")
    (own / "noise.safetensors").write_bytes(struct.pack("<Q", 20) + b"{not json at all...}" + b"\0" * 8)
    (own / "tail.safetensors").write_bytes(data + b"junk")
    (own / "huge-header.safetensors").write_bytes(struct.pack("<Q", 10**12) + data[8:200])
    (own / "old.ckpt").write_bytes(b"PK\x03\x04 a zip of pickles")
    (own / "old.pt").write_bytes(b"\x80\x02 a pickle")
    from safetensors.numpy import save_file
    import numpy as np

    save_file({"model.diffusion_model.input_blocks.0.0.weight": np.zeros((4, 4), np.float16)},
              str(own / "checkpoint.safetensors"))
    problems = {i.name: i.problem for i in LoraLibrary(own).scan()}
    assert problems["good"] == ""
    assert "truncated: its tensors need" in problems["truncated"]
    assert "too short to be a safetensors file" in problems["empty"]
    assert "not valid JSON" in problems["noise"]
    assert "bytes after its last tensor" in problems["tail"]
    assert "header claims 1000000000000 bytes" in problems["huge-header"]
    assert problems["old.ckpt"].startswith("a pickle file (.ckpt): refused, since loading one can run any code")
    assert problems["old.pt"].startswith("a pickle file (.pt)")
    assert "not a LoRA file" in problems["checkpoint"]
    for name in ("truncated", "old.ckpt", "checkpoint"):
        with pytest.raises(InvalidRequest, match=f"loras: LoRA '{name}': "):
            LoraLibrary(own).usable(name)
    assert length > 0


def test_hash_is_a1111s_tensor_hash_and_finds_a_renamed_file(own):
    good = own / "good.safetensors"
    data = good.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    expected = hashlib.sha256(data[8 + length:]).hexdigest()          # A1111: everything after the header
    library = LoraLibrary(own)
    assert library.hash(library.find("good")) == expected
    from safetensors.torch import load_file, save_file

    save_file(load_file(good), str(own / "retitled.safetensors"), metadata={"modelspec.title": "new words"})
    assert library.hash(library.find("retitled")) == expected          # metadata edits keep the hash
    assert hashlib.sha256((own / "retitled.safetensors").read_bytes()).hexdigest() != hashlib.sha256(data).hexdigest()
    (own / "retitled.safetensors").unlink()
    good.rename(own / "renamed.safetensors")
    info, digest, note = library.resolve("good", expected[:12])
    assert (info.name, digest) == ("renamed", expected)
    assert note == "LoRA 'good' is now 'renamed' (found by its hash " + expected[:12] + ")"
    with pytest.raises(ModelUnavailable, match=r"LoRA 'good' \(hash 0123456789ab\) is not in .*by name or by hash"):
        library.resolve("good", "0123456789ab")


def test_hub_loras_come_from_the_cache_and_offline_says_how_to_get_them(own, tmp_path):
    cache = tmp_path / "hub"
    library = LoraLibrary(own, offline=True, hub_cache=cache)
    with pytest.raises(ModelUnavailable, match="offline: run `hf download someone/styles ink.safetensors`"):
        library.find("someone/styles/ink.safetensors")
    snapshot = cache / "models--someone--styles" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (cache / "models--someone--styles" / "refs").mkdir()
    (cache / "models--someone--styles" / "refs" / "main").write_text("abc123")
    shutil.copy(own / "good.safetensors", snapshot / "ink.safetensors")
    info = library.usable("someone/styles/ink.safetensors")
    assert (info.name, info.hub, info.families) == ("someone/styles/ink.safetensors", "someone/styles", ("flux1",))
