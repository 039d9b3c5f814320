"""Fixtures of the IP-Adapter tests: a models folder with tiny FLUX, SDXL and SD1.5 models (links),
tiny IP-Adapters of each family in ``ip_adapter/`` (h94's layout for SD, XLabs' for FLUX, each with
a tiny CLIP vision encoder; ``sd15-ip-b``: a second SD1.5 adapter, another seed, the same encoder;
``sd15-noenc``: one without its encoder), a FLUX ControlNet, an SD1.5 LoRA; a studio and a
server on it (default model tiny-flux); reference pictures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.conftest import offline_studio, serving

KINDS = {"tiny-flux": "flux", "tiny-sdxl": "sdxl", "tiny-sd15": "sd15"}


def px(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="session")
def ip_models(tiny_models_dir, tmp_path_factory) -> Path:
    from diffusers import DiffusionPipeline

    from studio.models.tiny import save_tiny_controlnet, save_tiny_ip_adapter
    from studio.models.tiny_loras import save_tiny_lora

    root = tmp_path_factory.mktemp("ip-models")
    (root / "checkpoints").mkdir()
    for model_id, kind in KINDS.items():
        source = tiny_models_dir / "checkpoints" / model_id
        (root / "checkpoints" / model_id).symlink_to(source, target_is_directory=True)
        pipe = DiffusionPipeline.from_pretrained(source)
        save_tiny_ip_adapter(kind, root / "ip_adapter" / f"{kind}-ip", pipe)
        if kind == "sd15":
            save_tiny_ip_adapter(kind, root / "ip_adapter" / "sd15-ip-b", pipe, seed=0)
            from safetensors.torch import save_file

            from studio.models.tiny import tiny_ip_adapter_state

            save_file({k: v.contiguous() for k, v in tiny_ip_adapter_state(kind, pipe, seed=9).items()},
                      str(root / "ip_adapter" / "sd15-ip-b" / "ip_adapter.safetensors"))
            shutil.copytree(root / "ip_adapter" / "sd15-ip", root / "ip_adapter" / "sd15-noenc")
            shutil.rmtree(root / "ip_adapter" / "sd15-noenc" / "image_encoder")
    save_tiny_controlnet("flux", root / "checkpoints" / "tiny-flux", root / "controlnet" / "flux-union", union=True,
                         seed=2)
    save_tiny_lora("sd15", root / "checkpoints" / "tiny-sd15", root / "loras" / "sd15-style.safetensors", seed=4)
    save_tiny_lora("flux", root / "checkpoints" / "tiny-flux", root / "loras" / "flux-style.safetensors", seed=4)
    return root


@pytest.fixture(scope="session")
def ip_studio(ip_models, tmp_path_factory):
    return offline_studio(ip_models, tmp_path_factory.mktemp("ip-outputs"))


def red_and_green(folder: Path) -> tuple[Path, Path]:
    """Two references: a red disc on dark grey, a green bar on white."""
    red = Image.new("RGB", (48, 48), (20, 20, 20))
    ImageDraw.Draw(red).ellipse((8, 8, 40, 40), fill=(230, 30, 30))
    green = Image.new("RGB", (48, 48), (240, 240, 240))
    ImageDraw.Draw(green).rectangle((4, 18, 44, 30), fill=(20, 200, 40))
    red.save(folder / "red.png")
    green.save(folder / "green.png")
    return folder / "red.png", folder / "green.png"


@pytest.fixture(scope="session")
def refs(tmp_path_factory) -> dict[str, Path]:
    """A red disc on dark grey, a green bar on white, a blue square (a start image), not-an-image."""
    folder = tmp_path_factory.mktemp("ip-refs")
    red, green = red_and_green(folder)
    out = {"red": red, "green": green, "blue": folder / "blue.png", "text": folder / "notes.png"}
    Image.new("RGB", (64, 64), (30, 60, 200)).save(out["blue"])
    out["text"].write_text("not a picture")
    return out


@pytest.fixture(scope="session")
def ip_server(ip_models, tmp_path_factory):
    """A real server on the IP-Adapter models (default model tiny-flux) -> (url, studio)."""
    with serving(ip_models, tmp_path_factory.mktemp("ip-server-outputs"), default_model="tiny-flux") as served:
        yield served.url, served.studio


@pytest.fixture(scope="session")
def ip_client(ip_server):
    from gradio_client import Client

    return Client(ip_server[0], verbose=False)


def written(studio) -> tuple:
    from tests.conftest import png_files

    inputs = studio.sink.outputs_dir / "inputs"
    return (studio.sink.store.count(), len(png_files(studio.sink.outputs_dir)),
            len(list(inputs.iterdir())) if inputs.is_dir() else 0)
