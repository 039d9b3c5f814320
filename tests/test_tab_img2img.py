"""The img2img tab: its editor helpers, every sub-tab through the tab's own handler on tiny SDXL,
SD1.5 and SD3, the /img2img, /inpaint and /outpaint endpoints, and bad inputs (named, nothing written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.errors import InvalidRequest
from tests.conftest import png_files, serving

pytestmark = pytest.mark.e2e
MODELS = ["tiny-sdxl", "tiny-sd15", "tiny-sd3"]


def photo(folder: Path, size=(64, 48)) -> Path:
    image = Image.new("RGB", size, (30, 90, 200))
    ImageDraw.Draw(image).ellipse((8, 8, 36, 36), fill=(240, 200, 20))
    image.save(folder / "photo.png")
    return folder / "photo.png"


def layer(size=(64, 48), box=(32, 0, 64, 48), colour=(255, 0, 255, 190)) -> Image.Image:
    """What the editor hands over for strokes: paint on a transparent layer."""
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle(box, fill=colour)
    return image


def test_editor_helpers(tmp_path):
    from studio.ui import tab_img2img as tab

    mask = tab.strokes({"background": None, "layers": [layer(), layer(box=(0, 0, 3, 3))], "composite": None})
    assert mask.mode == "L" and mask.size == (64, 48)
    values = np.asarray(mask)
    assert values[10, 40] == 255 and values[2, 2] == 255 and values[20, 10] == 0 and set(np.unique(values)) == {0, 255}
    assert tab.strokes({"layers": [Image.new("RGBA", (8, 8))]}) is None and tab.strokes(None) is None
    assert tab.flat(Image.new("RGBA", (4, 4), (0, 0, 0, 0))).getpixel((0, 0)) == (255, 255, 255)
    a, b = tab.save_png(mask, tmp_path), tab.save_png(mask.copy(), tmp_path)
    assert a == b and len(list(tmp_path.iterdir())) == 1                      # once per content
    assert tab.editor_value("x.png") == {"background": "x.png", "layers": [], "composite": "x.png"}
    err = tab.renamed(InvalidRequest("init_image", "'notes.txt' is not an image"))
    assert err.field == "image" and str(err) == "image: 'notes.txt' is not an image"


@pytest.fixture(scope="module")
def server(tiny_models_dir, tmp_path_factory):
    with serving(tiny_models_dir, tmp_path_factory.mktemp("i2i-tab-outputs"), default_model="tiny-sd15") as served:
        yield served.url, served.studio, served.demo


def ui_generate(demo):
    """The tab's own Generate handler (what the button runs), called as gradio would."""
    fn = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "generate")

    def call(mode, prompt="a cat", model="tiny-sd15", **values):
        base = dict(prompt=prompt, negative_prompt="", model=model, width=0, height=0, steps=3, guidance=5,
                    seed=7, batch_count=1, batch_size=1, loras="")
        own = dict(image=None, sketch=None, paint=None, upload_image=None, upload_mask=None, outpaint_image=None,
                   left=0, right=0, up=0, down=0, fill="edge", strength=0.75, resize_mode="just_resize",
                   scale_by=1.0, mask_blur=4, mask_mode="masked", inpaint_area="whole", mask_padding=32)
        own.update(values)
        outputs = list(fn(*base.values(), mode, *own.values(), request=None, progress=lambda *a, **k: None))
        return outputs[-1]                          # Images, Seed used, Infotext, Image ids, Status

    return call


@pytest.mark.parametrize("model", MODELS)
def test_every_sub_tab_runs_through_the_tabs_handler(server, tmp_path, model):
    _, studio, demo = server
    generate = ui_generate(demo)
    picture = photo(tmp_path)
    background = Image.open(picture).convert("RGBA")
    editor = {"background": background, "layers": [layer()], "composite": background}
    Image.new("L", (64, 48), 0).save(tmp_path / "mask.png")
    mask = Image.open(tmp_path / "mask.png")
    mask.paste(255, (0, 0, 32, 48))
    mask.save(tmp_path / "mask.png")
    runs = {
        "img2img": dict(image=str(picture)),
        "sketch": dict(sketch=editor),
        "inpaint": dict(paint=editor, inpaint_area="only_masked", mask_padding=8),
        "inpaint_upload": dict(upload_image=str(picture), upload_mask=str(tmp_path / "mask.png"),
                               mask_mode="not_masked"),
        "outpaint": dict(outpaint_image=str(picture), right=16, down=16, strength=1.0),
    }
    for mode, values in runs.items():
        images, seed, infotext, ids, status = generate(mode, model=model, **values)
        record = studio.sink.store.get(ids[0])
        assert seed == "7" and len(ids) == 1 and record.model_id == model, (mode, status)
        size = (80, 64) if mode == "outpaint" else (64, 48)
        assert (record.width, record.height) == size and Image.open(record.path).size == size, mode
        assert record.task == ("img2img" if mode in ("img2img", "sketch") else "inpaint")
        assert "Denoising strength" in infotext and ("Mask blur: 4" in infotext) == (record.task == "inpaint")
        out, source = np.asarray(Image.open(record.path), np.int16), np.asarray(Image.open(picture), np.int16)
        if mode == "inpaint":                            # painted right half redrawn, left half kept
            assert np.array_equal(out[:, :32], source[:, :32]) and "Inpaint area: Only masked" in infotext
        if mode == "inpaint_upload":                     # "not masked": the white left half is kept
            assert np.array_equal(out[:, :32], source[:, :32]) and "Inpaint not masked" in infotext
        if mode == "outpaint":
            assert np.array_equal(out[:48, :64], source)


@pytest.mark.parametrize("model", MODELS)
def test_the_api_endpoints_take_plain_files_and_name_their_returns(server, tmp_path, model):
    from gradio_client import Client, handle_file

    url, studio, _ = server
    client = Client(url, verbose=False)
    picture = handle_file(str(photo(tmp_path)))
    mask = tmp_path / "mask.png"
    Image.new("L", (64, 48), 0).save(mask)
    with Image.open(mask) as m:
        m = m.copy()
    m.paste(255, (20, 10, 50, 40))
    m.save(mask)
    _, seed, infotext, ids, _ = client.predict("a dog", picture, model=model, seed=3, steps=2, strength=0.5,
                                               api_name="/img2img")
    assert seed == "3" and "Denoising strength: 0.5" in infotext and len(ids) == 1
    _, _, infotext, ids, _ = client.predict("a dog", picture, handle_file(str(mask)), model=model, seed=3, steps=2,
                                            mask_blur=2, api_name="/inpaint")
    assert "Mask blur: 2" in infotext and studio.sink.store.get(ids[0]).task == "inpaint"
    _, _, infotext, ids, _ = client.predict("a dog", picture, model=model, left=16, seed=3, steps=2,
                                            api_name="/outpaint")
    assert "Size: 80x48" in infotext


BAD = [
    ("/img2img", {}, "image: upload, paste or drop an image first"),
    ("/img2img", {"image": "notes.txt"}, "image: 'notes.txt' is not an image"),
    ("/img2img", {"image": "dot.png"}, "image: the image is 1x1 pixels"),
    ("/img2img", {"image": "bomb.png"}, "image: 'bomb.png' is 20000x20000, over the 64-megapixel limit"),
    ("/img2img", {"image": "photo.png", "strength": 0}, "strength: must be a number within 0 (exclusive)..1"),
    ("/inpaint", {"image": "photo.png", "mask": "black.png"}, "mask: the mask is empty"),
    ("/inpaint", {"image": "photo.png", "mask": "square.png"}, "mask: the mask is 32x32 but the image is 64x48"),
    ("/outpaint", {"image": "photo.png", "right": 4080}, "outpaint: the canvas would be 4144x48, over the 4096"),
    ("/outpaint", {"image": "photo.png"}, "outpaint: add pixels on at least one side"),
]


@pytest.mark.parametrize("endpoint, kwargs, message", BAD, ids=[b[2].split(":")[0] + "-" + b[0] for b in BAD])
def test_bad_input_is_a_clear_error_and_nothing_is_written(server, tmp_path, endpoint, kwargs, message):
    from gradio_client import Client, handle_file

    from tests.test_img2img import huge_png

    url, studio, _ = server
    photo(tmp_path)
    (tmp_path / "notes.txt").write_text("not an image")
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    Image.new("L", (64, 48), 0).save(tmp_path / "black.png")
    Image.new("L", (32, 32), 255).save(tmp_path / "square.png")
    huge_png(tmp_path / "bomb.png")
    files = {k: handle_file(str(tmp_path / v)) for k, v in kwargs.items() if isinstance(v, str)}
    args = {**kwargs, **files}
    if "image" not in args:
        args["image"] = None
    outputs, rows = studio.sink.outputs_dir, studio.sink.store.count()
    before = png_files(outputs)
    with pytest.raises(Exception) as info:
        Client(url, verbose=False).predict("a cat", **args, api_name=endpoint)
    assert message in str(info.value) and "bug in the studio" not in str(info.value)
    assert "/tmp/" not in str(info.value)
    assert png_files(outputs) == before and studio.sink.store.count() == rows


def test_send_to_img2img_from_the_gallery_and_png_info(server, tmp_path):
    from studio.requests import GenerationRequest

    _, studio, demo = server
    sends = {f.fn.__module__.rsplit(".", 1)[-1]: f.fn for f in demo.fns.values()
             if getattr(f.fn, "__name__", "") == "send_img2img"}
    assert set(sends) == {"tab_gallery", "tab_pnginfo"}
    made = studio.generate(GenerationRequest("a lynx", model_id="tiny-sd15", seed=8, steps=2, width=64, height=48))
    saved = made.saved[0]
    plain = photo(tmp_path)                                   # no parameters: the picture alone goes
    for values, image, prompt in ((sends["tab_gallery"](saved.image_id), saved.path, "a lynx"),
                                  (sends["tab_pnginfo"](saved.path), saved.path, "a lynx"),
                                  (sends["tab_pnginfo"](str(plain)), str(plain), None)):
        tabs, modes, mode, masking, picture, model, sent_prompt, *rest = values
        assert tabs.selected == "img2img" and modes.selected == "img2img" and mode == "img2img"
        assert picture == image
        assert (sent_prompt == prompt) if prompt else not isinstance(sent_prompt, str)
        width, height = rest[2], rest[3]
        assert (width, height) == (0, 0)                      # the size is the sent image's
