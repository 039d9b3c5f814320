"""img2img and inpaint through the studio on every family (tiny real pipelines), stored inputs,
and bad inputs refused before anything is written."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from studio.errors import InvalidRequest
from studio.requests import ControlUnit, GenerationRequest, ImagePrompt, Task

MODELS = ["tiny-flux", "tiny-sdxl", "tiny-sd15", "tiny-sd3"]


def px(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def studio(tiny_models_dir, tmp_path_factory):
    from studio.config import Settings
    from studio.wiring import build_studio

    return build_studio(Settings(models_dir=tiny_models_dir, outputs_dir=tmp_path_factory.mktemp("i2i-out"),
                                 offline=True, device="cpu"))


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """An 'upload': a picture with structure, at a size that is not the model's."""
    image = Image.new("RGB", (80, 64), (30, 90, 200))
    ImageDraw.Draw(image).ellipse((10, 10, 50, 50), fill=(240, 200, 20))
    path = tmp_path_factory.mktemp("upload") / "photo.png"
    image.save(path)
    return path


def mask_file(folder: Path, size=(80, 64)) -> Path:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle((0, 0, size[0] // 2, size[1]), fill=255)      # redraw the left half
    path = folder / f"mask-{size[0]}x{size[1]}.png"
    mask.save(path)
    return path


@pytest.mark.parametrize("model", MODELS)
def test_img2img_same_seed_same_pixels_and_strength_is_honoured(studio, photo, model):
    def run(strength):
        steps = []
        result = studio.generate(GenerationRequest("a cat", model_id=model, task=Task.IMG2IMG, init_image=str(photo),
                                                   strength=strength, seed=7, steps=8),
                                 on_progress=lambda ev: steps.append(ev.total))
        return result, steps

    (low, low_steps), (again, _), (high, high_steps) = run(0.25), run(0.25), run(1.0)
    assert low.request.width == 80 and low.request.height == 64        # the input's size (multiples of 16)
    assert low.images[0].size == (80, 64)
    assert np.array_equal(px(low.images[0]), px(again.images[0]))
    # strength is the share of the 8 steps that run, from a noised input (A1111's denoising strength)
    assert (len(low_steps), len(high_steps)) == (2, 8)
    assert not np.array_equal(px(low.images[0]), px(high.images[0]))
    assert low.request.init_image.startswith("inputs/")                 # the row refers to the stored input


@pytest.mark.parametrize("model", MODELS)
def test_inpaint_keeps_everything_outside_the_blurred_mask(studio, photo, tmp_path, model):
    mask = mask_file(tmp_path)
    req = GenerationRequest("a cat", model_id=model, task=Task.INPAINT, init_image=str(photo), mask_image=str(mask),
                            seed=3, steps=4, mask_blur=4)
    a, b = studio.generate(req), studio.generate(req)
    assert np.array_equal(px(a.images[0]), px(b.images[0]))
    soft = np.asarray(Image.open(mask).filter(ImageFilter.GaussianBlur(4)))
    out, source = px(a.images[0]), px(Image.open(photo))
    assert np.array_equal(out[soft == 0], source[soft == 0])            # untouched outside the mask
    assert np.abs(out[soft == 255] - source[soft == 255]).mean() > 1    # redrawn inside


def test_demo_inpaint_at_strength_one_changes_nothing_outside_the_mask(tmp_path):
    from studio.config import ROOT, Settings
    from studio.wiring import build_studio

    studio = build_studio(Settings(models_dir=ROOT / "models", outputs_dir=tmp_path / "out", offline=True,
                                   device="cpu", default_model="demo"))
    base = studio.generate(GenerationRequest("a red circle at the left on a blue background", seed=11))
    init = tmp_path / "init.png"
    base.images[0].save(init)
    mask = mask_file(tmp_path, (64, 64))
    out = studio.generate(GenerationRequest("a yellow square at the left on a blue background", task=Task.INPAINT,
                                            init_image=str(init), mask_image=str(mask), strength=1.0, seed=2))
    soft = np.asarray(Image.open(mask).filter(ImageFilter.GaussianBlur(out.request.mask_blur)))
    before, after = px(base.images[0]), px(out.images[0])
    assert np.array_equal(after[soft == 0], before[soft == 0])
    assert np.abs(after[soft == 255] - before[soft == 255]).mean() > 10     # the left half was redrawn


def test_regenerate_after_the_upload_is_gone_gives_the_same_pixels(studio, photo, tmp_path):
    from studio.gallery import browse

    upload = tmp_path / "gradio-temp-upload.png"
    upload.write_bytes(photo.read_bytes())
    first = studio.generate(GenerationRequest("a dog", model_id="tiny-sd15", task=Task.IMG2IMG,
                                              init_image=str(upload), strength=0.6, seed=5, steps=4))
    upload.unlink()
    store = studio.sink.store
    again = browse.regenerate(studio, store, first.saved[0].image_id)
    assert np.array_equal(px(first.images[0]), px(again.images[0]))
    stored = studio.sink.outputs_dir / first.request.init_image
    assert stored.is_file() and stored.name == f"{__import__('hashlib').sha256(stored.read_bytes()).hexdigest()}.png"


def huge_png(path: Path, width=20000, height=20000) -> Path:
    """A valid PNG header claiming 20000x20000 (a 'decompression bomb': tiny on disk)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def black(folder: Path) -> Path:
    Image.new("L", (80, 64), 0).save(folder / "black.png")
    return folder / "black.png"


def wide(folder: Path) -> Path:
    Image.new("RGB", (1040, 32), (255, 0, 0)).save(folder / "wide.png")
    return folder / "wide.png"


def dot(folder: Path) -> Path:
    Image.new("RGB", (1, 1), (255, 0, 0)).save(folder / "dot.png")
    return folder / "dot.png"


def bad_cases(photo: Path, folder: Path):
    text = folder / "notes.png"
    text.write_text("not an image")
    return [
        ({"task": Task.IMG2IMG}, "init_image", "needs an image"),
        ({"task": Task.INPAINT, "init_image": str(photo), "mask_image": str(mask_file(folder, (32, 32)))},
         "mask_image", "the mask is 32x32 but the image is 80x64"),
        ({"task": Task.IMG2IMG, "init_image": str(text)}, "init_image", "'notes.png' is not an image"),
        ({"task": Task.INPAINT, "init_image": str(photo), "mask_image": str(black(folder))}, "mask_image",
         "the mask is empty"),
        ({"task": Task.IMG2IMG, "init_image": str(dot(folder))}, "init_image", "the image is 1x1 pixels"),
        ({"task": Task.IMG2IMG, "init_image": str(photo), "strength": 0}, "strength", "0 (exclusive)"),
        ({"task": Task.IMG2IMG, "init_image": str(wide(folder)), "scale_by": 4.0}, "init_image",
         "1040x32 times scale_by 4: 4160x128 is over the 4096 px limit"),
        ({"task": Task.IMG2IMG, "init_image": str(huge_png(folder / "bomb.png"))}, "init_image",
         "20000x20000, over the"),
        ({"controls": (ControlUnit("normal", str(photo)),)}, "controls", "has no ControlNet for 'normal'"),
        ({"model_id": "tiny-sd3", "task": Task.IMG2IMG, "init_image": str(photo),
          "controls": (ControlUnit("canny", str(photo)),)}, "controls", "no ControlNet pipeline for img2img"),
        ({"image_prompts": (ImagePrompt((str(photo),), adapter="XLabs-AI/flux-ip-adapter-v2/ip_adapter.safetensors"),)},
         "image_prompts", "is a FLUX.1 adapter"),
        ({"references": (str(photo),)}, "references", "takes no reference images"),
    ]


def test_bad_inputs_are_named_and_nothing_is_written(studio, photo, tmp_path):
    outputs = studio.sink.outputs_dir
    for kwargs, field, message in bad_cases(photo, tmp_path):
        files_before = sorted(p for p in outputs.rglob("*") if p.is_file() and p.suffix == ".png")
        rows_before = studio.sink.store.count()
        with pytest.raises(InvalidRequest) as info:
            studio.generate(GenerationRequest("x", **{"model_id": "tiny-sd15", "seed": 1, **kwargs}))
        assert info.value.field == field and message in str(info.value), (kwargs, str(info.value))
        assert "/tmp" not in str(info.value) or field not in ("init_image", "mask_image")
        assert studio.sink.store.count() == rows_before
        assert sorted(p for p in outputs.rglob("*") if p.is_file() and p.suffix == ".png") == files_before


def test_outpaint_beyond_the_size_cap_is_refused_and_writes_nothing(studio, photo):
    outputs = studio.sink.outputs_dir
    before = sorted(p for p in outputs.rglob("*.png"))
    template = GenerationRequest("x", model_id="tiny-sd15", task=Task.IMG2IMG, init_image=str(photo), seed=1)
    for kwargs, field, message in (({"right": 4096}, "outpaint", "over the 4096 px limit"),
                                   ({}, "outpaint", "at least one side"), ({"up": -8}, "up", "within 0..4096")):
        with pytest.raises(InvalidRequest) as info:
            studio.outpaint(template, **kwargs)
        assert info.value.field == field and message in str(info.value)
    assert sorted(p for p in outputs.rglob("*.png")) == before


def test_a_mask_of_the_same_shape_at_another_size_is_scaled_to_its_image(studio, photo, tmp_path):
    small = mask_file(tmp_path, (40, 32))                        # painted on a half-size preview
    result = studio.generate(GenerationRequest("a cat", model_id="tiny-sd15", task=Task.INPAINT, seed=3, steps=2,
                                               init_image=str(photo), mask_image=str(small), mask_blur=0))
    out, source = px(result.images[0]), px(Image.open(photo))
    assert np.array_equal(out[:, 48:], source[:, 48:])               # the right part (unmasked) is the photo
    assert np.abs(out[:, :36] - source[:, :36]).mean() > 1
