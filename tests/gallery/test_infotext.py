"""A1111 infotext out and in; other studios' metadata in; PNG Info on any image."""

from __future__ import annotations

import json

import pytest
from PIL import Image, PngImagePlugin

from studio.gallery.files import write_png
from studio.gallery.infotext import format_infotext, parse_infotext, request_from_infotext
from studio.gallery.pnginfo import read_image_info
from studio.requests import ControlUnit, ImagePrompt, LoraSpec, Task
from tests.gallery.conftest import image, request

FORGE = ('masterpiece, 1girl\nNegative prompt: lowres, bad anatomy\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, '
         'Seed: 1234567890, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.7, '
         'Clip skip: 2, Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.7.0')

PROMPTS = [
    "a red cat",
    "masterpiece, best quality, (detailed:1.2), 1girl",
    'she said "hello", then: left',
    "line one\nline two, with comma\n  indented: yes",
    "猫の写真、夕焼け, Кошка на крыше: ярко, 🐱",
    " leading and trailing spaces ",
    "",
]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_round_trip_write_parse_equal(prompt):
    req = request(prompt, negative_prompt="lowres, bad: hands\n\"ugly\" 手", guidance=3.14159265, seed=4294967295,
                  loras=[("add_detail.v1.5", 0.8), ("x y-z", -1.25)], width=512, height=768)
    assert request_from_infotext(format_infotext(req, req.seed)) == req


def test_round_trip_keeps_studio_only_facts():
    req = request("a cat", task=Task.INPAINT, strength=0.55, init_image="/in/a, b.png", mask_image="/in/m.png",
                  controls=(ControlUnit("canny", "/c/edge: 1.png", model="demo-union", mode="canny", scale=0.0,
                                        start=0.1, end=0.9, preprocessor="canny", resolution=256,
                                        map="/in/map.png"),
                            ControlUnit("depth", "/c/d.png")),
                  image_prompts=(ImagePrompt(("/ref/“quote”.png", "/ref/b.png"), adapter="demo", scale=0.7),
                                 ImagePrompt(("/ref/c.png",))),
                  references=("/r/1.png",), loras=[("odd: name, with comma", 0.5)])
    assert request_from_infotext(format_infotext(req, req.seed)) == req


def test_a1111_controlnet_units_read_as_type_model_and_preprocessor():
    text = ("a dancer\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512, "
            'ControlNet 0: "Module: openpose_full, Model: control_v11p_sd15_openpose [cab727d4], Weight: 0.8, '
            'Resize Mode: Crop and Resize, Processor Res: 512, Guidance Start: 0, Guidance End: 1, Image: p.png"')
    unit = request_from_infotext(text).controls[0]
    assert (unit.type, unit.model, unit.preprocessor, unit.scale) == \
        ("pose", "control_v11p_sd15_openpose", "openpose_full", 0.8)


def test_parse_real_a1111_forge_string():
    parsed = parse_infotext(FORGE)
    assert parsed["Prompt"] == "masterpiece, 1girl"
    assert parsed["Negative prompt"] == "lowres, bad anatomy"
    assert parsed["Sampler"] == "DPM++ 2M Karras"
    assert parsed["Lora hashes"] == "add_detail: 7c6bad76eb54"       # quoted value, unquoted
    assert parsed["Clip skip"] == "2" and parsed["Version"] == "v1.7.0"   # unknown keys kept
    req = request_from_infotext(parsed)
    assert (req.prompt, req.negative_prompt, req.steps, req.guidance, req.seed) == \
        ("masterpiece, 1girl", "lowres, bad anatomy", 20, 7.0, 1234567890)
    assert (req.width, req.height, req.model_id, req.strength, req.scheduler) == \
        (512, 768, "v1-5-pruned-emaonly", None, "DPM++ 2M Karras")   # txt2img: 0.7 was hires fix


def test_forge_lora_tags_schedule_type_and_distilled_cfg():
    text = ("a cat <lora:add_detail:0.6> <lora:film:1>\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, "
            "CFG scale: 1, Distilled CFG Scale: 3.5, Seed: 1, Size: 896x1152, Model: flux1-dev")
    req = request_from_infotext(text)
    assert req.prompt == "a cat"
    assert req.loras == (LoraSpec("add_detail", 0.6), LoraSpec("film", 1.0))
    assert req.scheduler == "DPM++ 2M Karras" and req.guidance == 3.5


def test_parse_never_raises_on_odd_text():
    for text in ["", "just a prompt", "a: b", "\n\n", 'Steps: "unterminated, Seed: x, Size: y', "Negative prompt:"]:
        parsed = parse_infotext(text)
        assert "Prompt" in parsed


def _png(path, chunks: dict[str, str], size=(64, 48)):
    info = PngImagePlugin.PngInfo()
    for k, v in chunks.items():
        info.add_text(k, v)
    Image.new("RGB", size).save(path, pnginfo=info)
    return path


def test_png_info_reads_studio_a1111_fooocus_comfyui_and_nothing(tmp_path):
    req = request("a red cat", loras=[("add_detail", 0.8)])
    studio_png = write_png(image(), tmp_path / "s.png", {"parameters": format_infotext(req, 7), "studio": req.to_json()})
    info = read_image_info(studio_png)
    assert info.source == "studio" and info.request == req

    info = read_image_info(_png(tmp_path / "a.png", {"parameters": FORGE}))
    assert info.source == "a1111" and info.request.seed == 1234567890 and info.parameters["Clip skip"] == "2"

    fooocus = {"prompt": "a dog", "negative_prompt": "blurry", "steps": 30, "guidance_scale": 4.0, "seed": "42",
               "resolution": "(1024, 1024)", "sampler": "dpmpp_2m_sde_gpu", "base_model": "juggernautXL.safetensors",
               "loras": [["sd_xl_offset_example-lora_1.0.safetensors", 0.1]]}
    info = read_image_info(_png(tmp_path / "f.png", {"parameters": json.dumps(fooocus), "fooocus_scheme": "fooocus"}))
    assert info.source == "fooocus"
    assert (info.request.prompt, info.request.seed, info.request.width, info.request.model_id) == \
        ("a dog", 42, 1024, "juggernautXL")
    assert info.request.loras == (LoraSpec("sd_xl_offset_example-lora_1.0", 0.1),)

    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 99, "steps": 25, "cfg": 6.5, "sampler_name": "euler",
                                                        "denoise": 1.0, "positive": ["6", 0], "negative": ["7", 0],
                                                        "model": ["10", 0], "latent_image": ["5", 0]}},
             "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl/base.safetensors"}},
             "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 832, "height": 1216, "batch_size": 1}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a castle, sunset", "clip": ["10", 1]}},
             "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "lowres", "clip": ["10", 1]}},
             "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "style/ink.safetensors", "strength_model": 0.7,
                                                          "model": ["4", 0], "clip": ["4", 1]}}}
    info = read_image_info(_png(tmp_path / "c.png", {"prompt": json.dumps(graph), "workflow": "{}"}))
    assert info.source == "comfyui"
    req = info.request
    assert (req.prompt, req.negative_prompt, req.seed, req.steps, req.guidance) == ("a castle, sunset", "lowres", 99, 25, 6.5)
    assert (req.width, req.height, req.model_id, req.loras) == (832, 1216, "base", (LoraSpec("ink", 0.7),))

    info = read_image_info(_png(tmp_path / "n.png", {}))
    assert info.source == "none" and info.request is None and info.problem


def test_png_info_reports_why_a_foreign_size_is_not_a_request(tmp_path):
    text = FORGE.replace("512x768", "1000x1000")
    info = read_image_info(_png(tmp_path / "odd.png", {"parameters": text}))
    assert info.request is None and "multiple of 16" in info.problem
    assert info.fields["width"] == 1000


def test_png_info_reads_a1111_jpeg_exif_user_comment(tmp_path):
    im = Image.new("RGB", (64, 48), (10, 20, 30))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + FORGE.encode("utf-16-be")
    path = tmp_path / "a.jpg"
    im.save(path, format="JPEG", exif=exif.tobytes())
    info = read_image_info(path)
    assert info.source == "a1111" and info.request.seed == 1234567890 and info.request.prompt == "masterpiece, 1girl"


def test_inpaint_keys_are_a1111s_and_read_back():
    req = request("a cat", task=Task.INPAINT, strength=0.6, init_image="inputs/a.png", mask_image="inputs/m.png",
                  mask_blur=7, mask_mode="not_masked", inpaint_area="only_masked", mask_padding=40,
                  resize_mode="crop_and_resize")
    text = format_infotext(req, req.seed)
    for pair in ("Denoising strength: 0.6", "Mask blur: 7", "Mask mode: Inpaint not masked",
                 "Inpaint area: Only masked", "Masked area padding: 40", "Resize mode: Crop and resize"):
        assert pair in text
    assert request_from_infotext(text) == req
    plain = request("a cat", task=Task.INPAINT, strength=1.0, init_image="inputs/a.png", mask_image="inputs/m.png")
    text = format_infotext(plain, plain.seed)          # A1111 leaves the defaults out, except the blur
    assert "Mask blur: 4" in text and "Mask mode" not in text and "Inpaint area" not in text
    assert request_from_infotext(text) == plain
    # A1111's own text (its inpaint keys, no init image: it cannot be re-made, but the values are read)
    a1111 = parse_infotext("a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, "
                           "Denoising strength: 0.75, Mask blur: 4, Mask mode: Inpaint masked, "
                           "Inpaint area: Only masked, Masked area padding: 32")
    assert (a1111["Mask blur"], a1111["Inpaint area"], a1111["Masked area padding"]) == ("4", "Only masked", "32")
