"""One reader per tool, each on metadata as that tool writes it (tests/gallery/fixtures/*.json: text
chunks copied from real images of sd-parsers' test folder, or written by the tool's own code path;
each file names its origin). PNG Info reads them through real PNG/JPEG files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from studio.gallery.pnginfo import read_image_info
from studio.gallery.readers import read
from studio.requests import LoraSpec

FIXTURES = Path(__file__).parent / "fixtures"


def chunks_of(name: str) -> dict[str, str]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))["chunks"]


def png(path: Path, chunks: dict[str, str], size=(64, 48)) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value) if value.isascii() else info.add_itxt(key, value)
    Image.new("RGB", size, (40, 60, 80)).save(path, pnginfo=info)
    return path


def info_of(tmp_path, name: str, size=(64, 48)):
    return read_image_info(png(tmp_path / f"{name}.png", chunks_of(name), size))


# -- A1111 / Forge ----------------------------------------------------------------------------------
def test_a1111_png_and_jpeg_from_sd_parsers(tmp_path):
    info = info_of(tmp_path, "a1111_sd_parsers")
    assert info.source == "a1111" and info.model_hash == "c0d1994c73"
    req = info.request
    assert (req.prompt, req.negative_prompt, req.steps, req.scheduler, req.guidance, req.seed) == \
        ("photo of a duck", "monochrome", 15, "UniPC", 5.0, 235284042)
    assert (req.width, req.height, req.model_id) == (512, 400, "realistic_realisticVisionV20_v20")
    raw = bytes.fromhex(json.loads((FIXTURES / "a1111_jpeg_sd_parsers.json").read_text())["user_comment_hex"])
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = raw
    Image.new("RGB", (64, 48)).save(tmp_path / "a.jpg", exif=exif.tobytes())
    jpeg = read_image_info(tmp_path / "a.jpg")
    assert jpeg.source == "a1111" and jpeg.request == info.request


def test_forge_flux_text_keeps_every_key_and_reads_hashes(tmp_path):
    text = ("a cat in a teacup <lora:ink_style:0.7>\nSteps: 20, Sampler: Euler, Schedule type: Simple, CFG scale: 1, "
            "Distilled CFG Scale: 3.5, Seed: 1234, Size: 896x1152, Model hash: 7b6b5e6d4a, Model: flux1-dev-fp8, "
            'Lora hashes: "ink_style: 3c1f9a2b7d4e", Version: f2.0.1v1.10.1-previous-313-g8a042934, '
            "Module 1: ae, Module 2: clip_l, Module 3: t5xxl_fp16")
    info = read_image_info(png(tmp_path / "forge.png", {"parameters": text}))
    assert info.source == "a1111" and info.request.guidance == 3.5 and info.request.scheduler == "Euler"
    assert info.request.loras == (LoraSpec("ink_style", 0.7, "3c1f9a2b7d4e"),) and info.request.prompt == "a cat in a teacup"
    assert info.model_hash == "7b6b5e6d4a" and dict(info.lora_hashes) == {"ink_style": "3c1f9a2b7d4e"}
    assert info.parameters["Module 3"] == "t5xxl_fp16" and info.parameters["Version"].startswith("f2.0.1")


def test_a1111_values_that_do_not_fit_are_named_not_raised(tmp_path):
    text = "a dog <lora:loud:100>\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512"
    info = read_image_info(png(tmp_path / "x.png", {"parameters": text}))
    assert info.source == "a1111" and info.request is not None and info.request.loras == ()
    assert any("LoRA 'loud'" in note and "within -2..2" in note for note in info.notes)


# -- Fooocus ----------------------------------------------------------------------------------------
def test_fooocus_2_5_loras_are_name_weight_hash_and_the_seed_is_63_bit(tmp_path):
    info = info_of(tmp_path, "fooocus_2_5_scheme_fooocus")
    assert info.source == "fooocus" and info.problems == "", info.problems
    req = info.request
    assert (req.prompt, req.negative_prompt, req.seed) == ("a red fox in the snow", "blurry", 2**63 - 1)
    assert (req.width, req.height, req.steps, req.guidance, req.model_id) == \
        (896, 1152, 30, 4.0, "juggernautXL_v8Rundiffusion")
    assert req.scheduler == "DPM++ 2M SDE Karras"
    assert req.loras == (LoraSpec("sd_xl_offset_example-lora_1.0", 0.1), LoraSpec("SDXL_FILM_PHOTOGRAPHY_STYLE_V1", 0.5))
    assert info.model_hash == "aeb7e9e689"
    assert dict(info.lora_hashes) == {"sd_xl_offset_example-lora_1.0": "0bd7df6e1c",
                                      "SDXL_FILM_PHOTOGRAPHY_STYLE_V1": "f2a4b1b2e3"}
    assert info.parameters["styles"] == "['Fooocus V2', 'Fooocus Enhance', 'Fooocus Sharp']"   # kept as parameters
    assert info.parameters["prompt_expansion"].startswith("a red fox in the snow, intricate")
    assert info.parameters["sharpness"] == 2.0 and len(info.parameters["full_prompt"]) == 2


def test_fooocus_2_4_real_image_from_sd_parsers(tmp_path):
    info = info_of(tmp_path, "fooocus_2_4_sd_parsers")
    req = info.request
    assert info.source == "fooocus" and (req.prompt, req.seed, req.width, req.height, req.steps) == \
        ("a smiling goldfish", 6952411511246973023, 768, 1280, 30)
    assert req.model_id == "juggernautXL_v8Rundiffusion" and req.loras == () and info.model_hash == "aeb7e9e689"
    assert info.parameters["clip_skip"] == 2 and info.parameters["version"] == "Fooocus v2.4.3"


def test_fooocus_2_1_legacy_capitalised_keys(tmp_path):
    info = info_of(tmp_path, "fooocus_2_1_legacy")
    req = info.request
    assert info.source == "fooocus" and req is not None, info.problems
    assert (req.prompt, req.negative_prompt, req.width, req.height, req.steps, req.seed) == \
        ("a lighthouse on a cliff at dusk", "", 1152, 896, 30, 1234567890123456789)
    assert (req.guidance, req.model_id, req.scheduler) == (4.0, "juggernautXL_version6Rundiffusion",
                                                           "DPM++ 2M SDE Karras")
    assert req.loras == (LoraSpec("sd_xl_offset_example-lora_1.0", 0.1),)
    assert info.parameters["Fooocus V2 Expansion"].startswith("a lighthouse") and info.parameters["Sharpness"] == 2.0


def test_fooocus_a1111_scheme_takes_the_raw_prompt_and_lora_weights(tmp_path):
    info = info_of(tmp_path, "fooocus_2_5_scheme_a1111")
    req = info.request
    assert info.source == "fooocus" and (req.prompt, req.negative_prompt) == ("a red fox in the snow", "blurry")
    assert (req.seed, req.width, req.height, req.steps, req.scheduler) == \
        (2**63 - 1, 896, 1152, 30, "DPM++ 2M SDE Karras")
    assert req.loras == (LoraSpec("sd_xl_offset_example-lora_1.0", 0.1), LoraSpec("SDXL_FILM_PHOTOGRAPHY_STYLE_V1", 0.5))
    assert info.model_hash == "aeb7e9e689" and dict(info.lora_hashes)["SDXL_FILM_PHOTOGRAPHY_STYLE_V1"] == "f2a4b1b2e3"
    assert info.parameters["Sharpness"] == "2.0"


def test_fooocus_jpeg_exif_as_fooocus_writes_it(tmp_path):
    """modules/meta_parser.get_exif: UserComment, Software and MakerNote (the scheme) in IFD0."""
    exif = Image.Exif()
    exif[0x9286] = chunks_of("fooocus_2_5_scheme_fooocus")["parameters"]
    exif[0x0131] = "Fooocus v2.5.5"
    exif[0x927C] = "fooocus"
    Image.new("RGB", (64, 48)).save(tmp_path / "f.jpg", quality=95, exif=exif)
    info = read_image_info(tmp_path / "f.jpg")
    assert info.source == "fooocus" and info.request.seed == 2**63 - 1 and info.chunks["fooocus_scheme"] == "fooocus"


# -- ComfyUI ----------------------------------------------------------------------------------------
def test_comfyui_img2img_from_sd_parsers_reads_the_sampler_by_links(tmp_path):
    info = info_of(tmp_path, "comfyui_img2img_sd_parsers", size=(512, 512))
    req = info.request
    assert info.source == "comfyui"
    assert (req.prompt, req.negative_prompt, req.seed, req.steps, req.guidance) == \
        ("photograph of victorian woman with wings, sky clouds, meadow grass", "watermark, text", 280823642470253, 20, 8.0)
    assert (req.model_id, req.scheduler) == ("v1-5-pruned-emaonly", "DPM++ 2M")
    assert any("img2img" in note and "example.png" in note for note in info.notes)
    assert (req.width, req.height) == (512, 512)            # not in the graph: the image's own


def test_comfyui_two_passes_read_the_pass_that_made_the_image(tmp_path):
    final = info_of(tmp_path, "comfyui_unclip_2pass_sd_parsers", size=(1920, 1088))
    req = final.request
    assert (req.seed, req.steps, req.guidance, req.width, req.height) == (119080905858220, 8, 9.0, 1920, 1088)
    assert (req.prompt, req.model_id, req.scheduler) == ("beautiful scenery landscape outdoors mountains",
                                                        "cardosAnimated_v20", "DPM++ SDE")
    first = info_of(tmp_path, "comfyui_unclip_2pass_sd_parsers", size=(1280, 704))
    assert (first.request.seed, first.request.steps, first.request.model_id) == \
        (1106257833005336, 26, "wd-1-5-beta2-aesthetic-unclip-h-fp32")
    assert first.request.prompt.startswith("(waifu, anime, exceptional")


def test_comfyui_combined_regions_and_latent_composites(tmp_path):
    regions = info_of(tmp_path, "comfyui_regions_2pass_sd_parsers", size=(704, 1280))
    assert regions.request.seed == 335608130539327 and (regions.request.width, regions.request.height) == (704, 1280)
    assert "(best quality) (night:1.3)" in regions.request.prompt and "morning sky" in regions.request.prompt
    assert any("combined" in note for note in regions.notes)
    composite = info_of(tmp_path, "comfyui_latent_composite_sd_parsers", size=(1920, 1088))
    assert composite.source == "comfyui" and composite.request.model_id == "Anything-V3.0"
    assert composite.request.seed == 1084614416978598 and composite.request.steps == 9


def test_comfyui_flux_custom_sampler_follows_noise_guider_sigmas_and_a_seed_node(tmp_path):
    info = info_of(tmp_path, "comfyui_flux_custom_sampler", size=(1024, 768))
    req = info.request
    assert (req.prompt, req.seed, req.steps, req.guidance, req.scheduler) == \
        ("a tiny astronaut hatching from an egg on the moon", 2**64 - 2, 20, 3.5, "Euler")
    assert (req.width, req.height, req.model_id, req.loras) == (1024, 768, "flux1-dev", (LoraSpec("ink_style_v2", 0.8),))
    assert info.parameters["40"]["class_type"] == "Seed (rgthree)"          # the whole graph is kept


@pytest.mark.parametrize("name, size", [("comfyui_img2img_sd_parsers", (512, 512)),
                                        ("comfyui_unclip_2pass_sd_parsers", (1920, 1088)),
                                        ("comfyui_regions_2pass_sd_parsers", (704, 1280)),
                                        ("comfyui_latent_composite_sd_parsers", (1920, 1088))])
def test_comfyui_workflow_only_reads_the_same_as_the_prompt_graph(tmp_path, name, size):
    chunks = chunks_of(name)
    both = read(chunks, size)[0]
    only = read({"workflow": chunks["workflow"]}, size)[0]
    assert only is not None and only.source == "comfyui"
    assert only.fields == both.fields
    assert isinstance(only.parameters, dict) and "nodes" in only.parameters


# -- InvokeAI, SwarmUI, NovelAI ------------------------------------------------------------------------
def test_invokeai_3_from_sd_parsers(tmp_path):
    info = info_of(tmp_path, "invokeai_3_sd_parsers")
    req = info.request
    assert info.source == "invokeai"
    assert (req.prompt, req.seed, req.steps, req.guidance, req.width, req.height, req.model_id, req.scheduler) == \
        ("digital artwork, oil painting. painterly brushstrokes, holidays,", 3293022630, 35, 8.0, 1024, 1024,
         "juggernautXL", "Euler")
    assert info.parameters["ipAdapters"][0]["weight"] == 0.45 and info.parameters["vae"]["model_name"] == "VAEFix"


def test_invokeai_5_models_by_identifier_and_hash(tmp_path):
    info = info_of(tmp_path, "invokeai_5_sdxl")
    req = info.request
    assert (req.model_id, req.seed, req.scheduler, req.guidance) == ("Juggernaut XL v9", 4294967295,
                                                                      "DPM++ 2M Karras", 6.5)
    assert req.loras == (LoraSpec("watercolor_xl", 0.6),) and info.model_hash.startswith("blake3:")
    assert dict(info.lora_hashes)["watercolor_xl"].startswith("blake3:") and info.parameters["app_version"] == "5.6.0"


def test_swarmui_docs_example_and_loras_as_text(tmp_path):
    info = info_of(tmp_path, "swarmui_docs_example")
    req = info.request
    assert info.source == "swarmui" and (req.prompt, req.seed, req.steps, req.guidance, req.width, req.model_id) == \
        ("a photo of a cat", 1, 20, 7.0, 1024, "sd_xl_base_1.0")
    assert info.model_hash == "0xd7a9105a900fd52748f20725fe52fe52b507fd36bee4fc107b1550a26e6ee1d7"
    assert info.parameters["sui_extra_data"]["generation_time"] == "4.84 sec"
    loras = info_of(tmp_path, "swarmui_loras", size=(832, 1216))
    assert (loras.request.seed, loras.request.steps, loras.request.guidance, loras.request.scheduler) == \
        (2138144307, 30, 6.5, "DPM++ 2M Karras")
    assert loras.request.loras == (LoraSpec("epi_noiseoffset2", 0.5), LoraSpec("more_details", 1.0))
    assert dict(loras.lora_hashes) == {"more_details": "0x3b8aa1d351ef2a6a8d3e4d6d8f1e2c3b4a5968778695a4b3c2d1e0f9a8b7c6d5"}


def test_novelai_legacy_from_sd_parsers_and_v4_5(tmp_path):
    old = info_of(tmp_path, "novelai_legacy_sd_parsers", size=(512, 768))
    req = old.request
    assert old.source == "novelai" and req.prompt == "masterpiece, best quality,  cat, space, icon"
    assert (req.seed, req.steps, req.guidance, req.scheduler, req.model_id) == \
        (2253955223, 50, 10.0, "Euler a", "Stable Diffusion")
    assert req.negative_prompt.startswith("lowres, bad anatomy") and (req.width, req.height) == (512, 768)
    new = info_of(tmp_path, "novelai_v4_5")
    req = new.request
    assert (req.seed, req.width, req.height, req.steps, req.guidance, req.scheduler, req.model_id) == \
        (917009594, 832, 1216, 28, 5.0, "Euler a Karras", "NovelAI Diffusion V4.5")
    assert req.negative_prompt == "blurry, lowres, error, worst quality, bad quality"
    assert new.parameters["Comment"]["signed_hash"] and new.parameters["Generation time"] == "7.297873836010695"


# -- shapes no reader expects -----------------------------------------------------------------------
WRONG_SHAPES = {
    "a list as parameters": {"parameters": "[1, 2, 3]"},
    "JSON nobody knows": {"parameters": '{"foo": 1, "bar": [2]}'},
    "Fooocus scheme, text": {"parameters": "just words", "fooocus_scheme": "fooocus"},
    "Fooocus, values of the wrong kinds": {"parameters": json.dumps(
        {"prompt": ["not", "text"], "resolution": 5, "seed": {"a": 1}, "loras": "x", "base_model": 7,
         "performance": "Speed"}), "fooocus_scheme": "fooocus"},
    "Fooocus LoRAs of the wrong shape": {"parameters": json.dumps(
        {"prompt": "a", "resolution": "(1024, 1024)", "loras": [["a"], "b", ["c", "heavy", "h"], ["d", 1e9, "h"]]})},
    "ComfyUI prompt as a list": {"prompt": "[1, 2]", "workflow": "{}"},
    "ComfyUI nodes without a sampler": {"prompt": json.dumps({"1": {"class_type": "SaveImage", "inputs": {}}})},
    "ComfyUI links to nowhere": {"prompt": json.dumps({"9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}},
                                                       "8": {"class_type": "KSampler", "inputs": {
                                                           "seed": ["77", 0], "positive": ["99", 0], "model": 5}}})},
    "ComfyUI workflow of the wrong shape": {"workflow": json.dumps({"nodes": {"a": 1}})},
    "InvokeAI as text": {"invokeai_metadata": '"a string"'},
    "InvokeAI loras as a number": {"invokeai_metadata": json.dumps({"positive_prompt": "a", "loras": 5, "model": 3})},
    "SwarmUI params as a list": {"parameters": json.dumps({"sui_image_params": [1]})},
    "NovelAI comment as a list": {"Software": "NovelAI", "Comment": "[1]", "Description": "a cat"},
    "studio chunk broken": {"studio": '{"prompt": 5}'},
}


@pytest.mark.parametrize("label", sorted(WRONG_SHAPES))
def test_valid_json_of_the_wrong_shape_is_a_clear_message_never_an_error(tmp_path, label):
    info = read_image_info(png(tmp_path / "w.png", WRONG_SHAPES[label]))
    assert info.problems, label                          # said, in words
    if info.source == "none":
        assert info.problem.startswith("no generation parameters") and ";" in info.problem, info.problem
    assert "Traceback" not in info.problems
