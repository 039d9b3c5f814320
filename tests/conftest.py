"""Shared fixtures: tiny real pipelines saved once per session, studios wired like app.py."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import contextlib  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, NamedTuple  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # two cores, often both busy: one thread is far faster for tiny models


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """A models folder whose checkpoints/ holds tiny FLUX, SDXL, SD1.5 and SD3 diffusers folders."""
    from studio.models.tiny import save_tiny

    root = tmp_path_factory.mktemp("models")
    for kind in ("flux", "sdxl", "sd15", "sd3"):
        save_tiny(kind, root / "checkpoints" / f"tiny-{kind}", seed=0)
    for name in ("tiny-flux", "tiny-sd3"):
        (root / "checkpoints" / name / "studio.json").write_text(
            '{"max_sequence_length": 32, "default_steps": 4, "width": 64, "height": 64}')
    for name in ("tiny-sdxl", "tiny-sd15"):
        (root / "checkpoints" / name / "studio.json").write_text('{"width": 64, "height": 64, "default_steps": 4}')
    return root


@pytest.fixture(scope="session")
def tiny_controlnets(tiny_models_dir) -> dict[str, str]:
    """ControlNets in <models>/controlnet/: a FLUX union net and an SD1.5 net; name by kind."""
    from studio.models.tiny import save_tiny_controlnet

    checkpoints, nets = tiny_models_dir / "checkpoints", tiny_models_dir / "controlnet"
    save_tiny_controlnet("flux", checkpoints / "tiny-flux", nets / "tiny-flux-union", union=True, seed=1)
    save_tiny_controlnet("sd15", checkpoints / "tiny-sd15", nets / "tiny-sd15-canny", seed=2)
    return {"flux": "tiny-flux-union", "sd15": "tiny-sd15-canny"}


@pytest.fixture(scope="session")
def sd15_lora_named(tiny_models_dir) -> str:
    """A LoRA for tiny-sd15 saved as <models>/loras/tiny_style.safetensors; returns its name."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models_dir / "checkpoints" / "tiny-sd15")
    torch.manual_seed(5)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                     target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    StableDiffusionPipeline.save_lora_weights(tiny_models_dir / "loras",
                                              unet_lora_layers=get_peft_model_state_dict(pipe.unet),
                                              weight_name="tiny_style.safetensors")
    return "tiny_style"


@pytest.fixture(scope="session")
def tiny_flux_controlnet(tiny_models_dir, tmp_path_factory) -> Path:
    """A ControlNet for tiny-flux (random, one double block), saved as a diffusers folder."""
    from diffusers import FluxControlNetModel, FluxTransformer2DModel

    transformer = FluxTransformer2DModel.from_pretrained(tiny_models_dir / "checkpoints" / "tiny-flux" / "transformer")
    cn = FluxControlNetModel.from_transformer(transformer, num_layers=1, num_single_layers=0,
                                              attention_head_dim=16, num_attention_heads=2)
    folder = tmp_path_factory.mktemp("cn") / "tiny-flux-cn"
    cn.save_pretrained(folder)
    return folder


@pytest.fixture
def make_studio(tiny_models_dir, tmp_path):
    """Build a Studio exactly as app.py does, on the tiny models and a fresh outputs folder."""

    def make(**overrides):
        return offline_studio(tiny_models_dir, tmp_path / "outputs", cache_dir=tmp_path / "cache", **overrides)

    return make


def readme_section(name: str) -> str:
    """The README between ``<!-- {name}: begin -->`` and ``<!-- {name}: end -->`` (tables and
    examples that tests keep true)."""
    from studio.config import ROOT

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split(f"<!-- {name}: begin -->", 1)[1].split(f"<!-- {name}: end -->", 1)[0]


def readme_python(name: str) -> list[str]:
    """The python code blocks of a README section, in order."""
    import re

    return re.findall(r"```python\n(.*?)```", readme_section(name), flags=re.S)


def run_readme_python(code: str, url: str, scope: dict | None = None) -> dict:
    """Run a README code block as a reader would paste it, against the studio at ``url``."""
    scope = {} if scope is None else scope
    exec(compile(code.replace("http://127.0.0.1:7860/", url), "README.md", "exec"), scope)
    return scope


def offline_settings(models_dir: Path, outputs_dir: Path, **settings):
    """The studio's Settings, offline on the CPU, on ``models_dir``."""
    from studio.config import Settings

    return Settings(models_dir=models_dir, outputs_dir=outputs_dir, offline=True, device="cpu", **settings)


def offline_studio(models_dir: Path, outputs_dir: Path, **settings):
    """A Studio wired as app.py wires it, offline on the CPU, on ``models_dir``."""
    from studio.wiring import build_studio

    return build_studio(offline_settings(models_dir, outputs_dir, **settings))


@contextlib.contextmanager
def serving(models_dir: Path, outputs_dir: Path, **settings):
    """A real studio server, wired and launched as app.py does it, offline on the CPU on 127.0.0.1
    (a free port) -> Served(url, studio, settings, demo); closed when the block ends."""
    from studio.ui.app import build_app, launch_kwargs
    from studio.wiring import build_studio

    config = offline_settings(models_dir, outputs_dir, port=free_port(), **settings)
    studio = build_studio(config)
    demo = build_app(studio, config)
    demo.launch(**launch_kwargs(config, studio), prevent_thread_lock=True, quiet=True)
    try:
        yield Served(f"http://127.0.0.1:{config.port}/", studio, config, demo)
    finally:
        demo.close()


class Served(NamedTuple):
    url: str
    studio: Any
    settings: Any
    demo: Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*.png")) if Path(folder).exists() else []


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def launch_chromium(playwright):
    """Debian's chromium, never a downloaded browser; flags that keep it off the network."""
    import shutil

    return playwright.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                      headless=True, args=CHROMIUM_ARGS)


def wait_until(check, timeout: float = 30.0) -> bool:
    """Poll ``check()`` until true or ``timeout`` seconds; returns the last answer."""
    deadline = time.time() + timeout
    while not check() and time.time() < deadline:
        time.sleep(0.2)
    return bool(check())


def open_gallery_and_pick(browser, url: str, query: str, label: str):
    """Open the studio, search the Gallery tab for ``query``, wait for the page ``label``
    (e.g. "· 2 images") and click the first image. Returns the page."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, wait_until="domcontentloaded")
    search_gallery_and_pick(page, query, label)
    return page


def search_gallery_and_pick(page, query: str, label: str) -> None:
    """Switch to the Gallery tab, search ``query``, wait for ``label``, click the first image."""
    page.get_by_role("tab", name="Gallery").click()
    # the tab's own listing (on select) must land before the search, or it may overwrite it
    assert wait_until(lambda: "page" in page.locator("#gallery-page").inner_text())
    time.sleep(0.5)
    page.locator("#gallery-search textarea, #gallery-search input").first.fill(query)
    page.keyboard.press("Enter")
    assert wait_until(lambda: label in page.locator("#gallery-page").inner_text()), \
        page.locator("#gallery-page").inner_text()
    page.locator("#gallery-grid button img, #gallery-grid img").first.click()
