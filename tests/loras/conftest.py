"""A models folder of the LoRA tests' own: the tiny checkpoints (linked) and tiny LoRAs in both
layouts, for SD1.5, SDXL and FLUX, built offline once per session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

KOHYA_META = {
    "ss_output_name": "flux_style", "ss_base_model_version": "flux1", "ss_sd_model_name": "tiny-flux",
    "ss_network_dim": "4", "ss_resolution": "(64, 64)",
    "ss_tag_frequency": json.dumps({"shapes": {"red": 12, "circle": 9, "hollow": 30}}),
    "modelspec.title": "Tiny style", "modelspec.description": "Makes the tiny model draw otherwise.",
    "modelspec.architecture": "flux-1-schnell/lora", "modelspec.trigger_phrase": "tinystyle, bold lines",
    "modelspec.resolution": "64x64",
}


@pytest.fixture(scope="session")
def lora_models(tiny_models_dir, tmp_path_factory) -> Path:
    """``<root>/checkpoints/tiny-{flux,sdxl,sd15}`` (links) and ``<root>/loras/``:

    - ``flux-style`` (diffusers layout, kohya + ModelSpec metadata, a preview beside it),
      ``flux-second`` (another seed), ``kohya/flux-kohya`` (sd-scripts' BFL names);
    - ``sdxl-style`` (diffusers, with both text encoders), ``kohya/sdxl-kohya``;
    - ``sd15-style`` (diffusers), ``kohya/sd15-kohya``."""
    from PIL import Image

    from studio.models.tiny_loras import save_tiny_lora

    root = tmp_path_factory.mktemp("lora-models")
    (root / "checkpoints").mkdir()
    for kind in ("flux", "sdxl", "sd15"):
        (root / "checkpoints" / f"tiny-{kind}").symlink_to(tiny_models_dir / "checkpoints" / f"tiny-{kind}")
    ckpt, loras = root / "checkpoints", root / "loras"
    save_tiny_lora("flux", ckpt / "tiny-flux", loras / "flux-style.safetensors", metadata=KOHYA_META)
    Image.new("RGB", (32, 32), (200, 30, 30)).save(loras / "flux-style.preview.png")
    save_tiny_lora("flux", ckpt / "tiny-flux", loras / "flux-second.safetensors", seed=7)
    save_tiny_lora("flux", ckpt / "tiny-flux", loras / "kohya" / "flux-kohya.safetensors", layout="kohya", seed=3)
    save_tiny_lora("sdxl", ckpt / "tiny-sdxl", loras / "sdxl-style.safetensors", text_encoder=True, seed=1)
    save_tiny_lora("sdxl", ckpt / "tiny-sdxl", loras / "kohya" / "sdxl-kohya.safetensors", layout="kohya", seed=2)
    save_tiny_lora("sd15", ckpt / "tiny-sd15", loras / "sd15-style.safetensors", seed=4)
    save_tiny_lora("sd15", ckpt / "tiny-sd15", loras / "kohya" / "sd15-kohya.safetensors", layout="kohya", seed=5)
    return root


@pytest.fixture
def lora_studio(lora_models, tmp_path):
    """A Studio wired as app.py does, on the LoRA models folder and a fresh outputs folder."""
    from studio.config import Settings
    from studio.wiring import build_studio

    return build_studio(Settings(models_dir=lora_models, outputs_dir=tmp_path / "outputs", cache_dir=tmp_path / "c",
                                 offline=True, device="cpu"))


@pytest.fixture
def own_studio(lora_models, tmp_path):
    """A studio with a LoRA folder of its own (copies of flux-style and flux-second): files may be
    renamed or removed."""
    import shutil

    from studio.config import Settings
    from studio.wiring import build_studio

    root = tmp_path / "models"
    (root / "loras").mkdir(parents=True)
    (root / "checkpoints").mkdir()                 # its own: a merge writes here
    for model in (lora_models / "checkpoints").iterdir():
        (root / "checkpoints" / model.name).symlink_to(model.resolve())
    for name in ("flux-style", "flux-second"):
        shutil.copy(lora_models / "loras" / f"{name}.safetensors", root / "loras" / f"{name}.safetensors")
    return build_studio(Settings(models_dir=root, outputs_dir=tmp_path / "out", offline=True, device="cpu"))


DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "loras_tab.png"


def save_docs_shot(png: bytes, kind: str) -> bool:
    """The README's picture of the LoRAs tab (``docs/loras_tab.png``), marked with what it shows
    (``tiny``: the test LoRAs; ``demo``: the demo LoRAs). Written when there is none, when a demo
    shot replaces a tiny one, or when STUDIO_DOCS_SHOTS=1 asks; so a test run leaves the tree clean."""
    import io
    import os

    from PIL import Image

    from studio.gallery.files import write_png

    current = ""
    if DOCS_SHOT.is_file():
        with Image.open(DOCS_SHOT) as old:
            current = (getattr(old, "text", None) or {}).get("shows", "")
    if DOCS_SHOT.is_file() and os.environ.get("STUDIO_DOCS_SHOTS") != "1" and not (kind == "demo" and current != "demo"):
        return False
    with Image.open(io.BytesIO(png)) as image:
        write_png(image.convert("RGB"), DOCS_SHOT, {"shows": kind})
    return True
