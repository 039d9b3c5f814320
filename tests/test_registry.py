import json
import struct

import pytest

from studio.config import ROOT, Settings
from studio.errors import ModelUnavailable
from studio.models.catalog import FAMILIES, detect_family
from studio.models.registry import DEMO_DIR, Registry


def write_fake_safetensors(path, keys):
    """A valid safetensors header naming ``keys`` (1-element tensors): enough for detection."""
    header, offset = {}, 0
    for key in keys:
        header[key] = {"dtype": "F16", "shape": [1], "data_offsets": [offset, offset + 2]}
        offset += 2
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


@pytest.mark.parametrize("keys, family", [
    ({"double_blocks.0.img_attn.qkv.weight"}, "flux-schnell"),
    ({"model.diffusion_model.double_blocks.0.img_attn.qkv.weight",
      "model.diffusion_model.guidance_in.in_layer.weight"}, "flux-dev"),
    ({"transformer_blocks.0.attn.to_q.weight", "single_transformer_blocks.0.proj_out.weight"}, "flux-schnell"),
    ({"model.diffusion_model.label_emb.0.0.weight", "model.diffusion_model.input_blocks.0.0.weight"}, "sdxl"),
    ({"model.diffusion_model.input_blocks.0.0.weight",
      "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"}, "sd15"),
    ({"model.diffusion_model.joint_blocks.0.context_block.attn.qkv.weight"}, "sd3"),
    ({"something.else"}, None),
])
def test_family_from_keys(keys, family):
    assert detect_family(frozenset(keys)) == family


def test_local_checkpoints_are_listed_with_their_family(tmp_path):
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    write_fake_safetensors(ckpt / "myxl.safetensors", ["model.diffusion_model.label_emb.0.0.weight"])
    write_fake_safetensors(ckpt / "mystery.safetensors", ["foo.bar"])
    write_fake_safetensors(ckpt / "named.safetensors", ["foo.bar"])
    (ckpt / "named.json").write_text('{"family": "sd15"}')
    reg = Registry(Settings(models_dir=tmp_path, offline=False))
    assert reg.get("myxl").family.name == "sdxl"
    assert reg.get("named").family.name == "sd15"
    mystery = reg.get("mystery")
    assert not mystery.available and "mystery.json" in mystery.reason


def test_a_truncated_checkpoint_or_controlnet_is_named_before_anything_loads_it(tmp_path):
    """One header reader for checkpoints, ControlNets, IP-Adapters and LoRAs (studio.models.header):
    a download cut short is listed as truncated, not offered and then failing to load."""
    ckpt, nets = tmp_path / "checkpoints", tmp_path / "controlnet"
    ckpt.mkdir(), nets.mkdir()
    for path, key in ((ckpt / "cut.safetensors", "model.diffusion_model.label_emb.0.0.weight"),
                      (nets / "cutnet.safetensors", "controlnet_x_embedder.weight")):
        write_fake_safetensors(path, [key, "b"])
        path.write_bytes(path.read_bytes()[:-1])
    reg = Registry(Settings(models_dir=tmp_path, offline=True))
    cut = reg.get("cut")
    assert not cut.available and "truncated" in cut.reason and "cut.safetensors" in cut.reason
    from studio.models.controlnets import inspect_local

    net = inspect_local(nets / "cutnet.safetensors", {})
    assert "truncated" in net.reason and net.group is None


def test_offline_hub_model_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    reg = Registry(Settings(models_dir=tmp_path, offline=True))
    entry = reg.get("flux-schnell")
    assert not entry.available
    with pytest.raises(ModelUnavailable, match="hf download black-forest-labs/FLUX.1-schnell"):
        reg.require("flux-schnell")


def test_unknown_model_lists_known_ones(tmp_path):
    reg = Registry(Settings(models_dir=tmp_path, offline=True))
    with pytest.raises(ModelUnavailable, match="unknown model 'nope'.*tiny-random"):
        reg.require("nope")


def test_default_is_tiny_random_without_demo(tmp_path):
    reg = Registry(Settings(models_dir=tmp_path, offline=True), demo_dir=tmp_path / "no-demo")
    assert reg.default_id() == "tiny-random"


def test_demo_model_ships_with_the_code_whatever_the_models_dir(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    write_fake_safetensors(tmp_path / "checkpoints" / "mine.safetensors", ["model.diffusion_model.label_emb.0.0.weight"])
    reg = Registry(Settings(models_dir=tmp_path, offline=True))
    assert reg.ids()[:2] == ["demo", "tiny-random"] and "mine" in reg.ids()
    assert reg.default_id() == "demo" and reg.require("demo").where == str(DEMO_DIR)
    assert DEMO_DIR == ROOT / "models" / "demo" and not (tmp_path / "demo").exists()


def test_catalog_defaults_match_the_families():
    schnell, dev = FAMILIES["flux-schnell"], FAMILIES["flux-dev"]
    assert (schnell.default_steps, schnell.default_guidance, schnell.max_sequence_length) == (4, 0.0, 256)
    assert (dev.default_steps, dev.default_guidance, dev.negative) == (28, 3.5, "true_cfg")
