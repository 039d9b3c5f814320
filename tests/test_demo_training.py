"""Every demo-family training stage runs for a few steps on a tiny dataset and saves something the
plain diffusers calls load; an interrupted stage goes on from its saved state. CI never retrains
what ships (that is models/ and tests/test_demo_family.py)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from studio.demo.family_eval import run  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "models" / "demo"


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_free_stage_trains_buckets_and_keeps_the_vae(tmp_path):
    from diffusers import FluxPipeline

    from studio.demo import train_free

    train_free.main(["--quick", "--base", str(DEMO), "--out", str(tmp_path / "demo"), "--work", str(tmp_path / "w"),
                     "--threads", "1", "--bucket-weights", "64x64=0.7"])
    meta = json.loads((tmp_path / "demo" / "studio.json").read_text())
    assert meta["sizes"] == [[64, 64], [80, 48], [48, 80]]
    phase = meta["training"]["phases"][-1]
    assert phase["stage"] == "free wording and sizes" and phase["cpu_time_s"] >= 0
    assert phase["bucket_weights"] == {"64x64": 0.7, "80x48": 0.25, "48x80": 0.25}
    a, b = FluxPipeline.from_pretrained(DEMO), FluxPipeline.from_pretrained(tmp_path / "demo")
    assert all(torch.equal(x, y) for x, y in zip(a.vae.state_dict().values(), b.vae.state_dict().values()))
    b.set_progress_bar_config(disable=True)
    assert run(b, ["a red shape"], [0], 80, 48).shape == (1, 1, 48, 80, 3)


def test_bucket_weights_name_trained_canvases_and_are_positive():
    import argparse

    from studio.demo.train_free import _bucket_weights

    assert _bucket_weights("64x64=0.7,48x80=0.1") == {(64, 64): 0.7, (80, 48): 0.25, (48, 80): 0.1}
    for bad, why in (("96x96=1", "unknown name '96x96'"), ("64x64=0", "above 0")):
        with pytest.raises(argparse.ArgumentTypeError, match=why):
            _bucket_weights(bad)


def test_keep_base_learns_the_other_canvases_and_keeps_the_base_at_64x64(tmp_path):
    """With the teacher (a frozen copy of the base), a 64x64 step's target is the base's own
    prediction: the loss is zero and nothing moves. An 80x48 step learns from the renders."""
    import argparse
    import copy

    from diffusers import FluxPipeline

    from studio.demo import train_free as T
    from studio.demo.trainkit import CaptionTable

    pipe = FluxPipeline.from_pretrained(DEMO)
    teacher = copy.deepcopy(pipe.transformer).requires_grad_(False)
    before = copy.deepcopy(pipe.transformer.state_dict())
    args = argparse.Namespace(steps=2, detail_steps=0, lr=1e-3, detail_lr=1e-3, noise_shift=3.0,
                              detail_noise_shift=1.0, batch=2, ema=0.999, keep={}, captions="template",
                              ckpt_every=2, seed=1)
    table = CaptionTable(pipe)

    def steps_on(size, work):
        bucket = T.Bucket(pipe.vae, size, 4, seed=5)
        ema = copy.deepcopy(pipe.transformer).requires_grad_(False)
        T.train(pipe, ema, [bucket], np.array([1.0]), table, args, work, teacher)
        return all(torch.equal(v, pipe.transformer.state_dict()[k]) for k, v in before.items())

    assert steps_on((64, 64), tmp_path / "square")
    assert not steps_on((80, 48), tmp_path / "wide")


def test_grown_blocks_start_as_the_identity_for_the_transformer_and_its_controlnet():
    """Appended single blocks change nothing until trained; a grown ControlNet gives them zero
    residuals, so each trained block keeps the residual it was trained with."""
    import copy

    from diffusers import FluxControlNetModel, FluxPipeline

    from studio.demo.grow import grow_controlnet, grow_transformer

    pipe = FluxPipeline.from_pretrained(DEMO)
    tr, net = pipe.transformer, FluxControlNetModel.from_pretrained(DEMO.parent / "controlnet" / "demo-union")
    old_tr, old_net = copy.deepcopy(tr), copy.deepcopy(net)
    trained = len(tr.single_transformer_blocks)
    assert grow_transformer(tr, 4, seed=1) == [trained + k for k in range(4)]
    assert tr.config.num_single_layers == trained + 4
    assert grow_controlnet(net, trained, trained + 4) == 2 * len(old_net.single_transformer_blocks)
    g = torch.Generator().manual_seed(0)
    kw = dict(hidden_states=torch.randn(2, 64, 64, generator=g), timestep=torch.tensor([0.3, 0.8]),
              pooled_projections=torch.randn(2, 64, generator=g), encoder_hidden_states=torch.randn(2, 16, 64, generator=g),
              txt_ids=torch.zeros(16, 3), img_ids=pipe._prepare_latent_image_ids(2, 8, 8, "cpu", torch.float32),
              return_dict=False)
    cond = dict(controlnet_cond=torch.randn(2, 64, 64, generator=g), controlnet_mode=torch.tensor([[0], [1]]),
                conditioning_scale=1.0)

    def controlled(t, n):
        blocks, singles = n(**cond, **kw)
        return t(controlnet_block_samples=blocks, controlnet_single_block_samples=singles, **kw)[0]

    with torch.no_grad():
        assert torch.equal(old_tr(**kw)[0], tr(**kw)[0])
        assert torch.equal(controlled(old_tr, old_net), controlled(tr, net))
        assert not torch.equal(controlled(tr, net), tr(**kw)[0])
    with pytest.raises(ValueError, match="residual mapping"):  # 2 residuals over 3 blocks: block 2 shares one
        grow_controlnet(copy.deepcopy(old_net), 3, 7)


def test_free_stage_trains_only_the_grown_blocks_when_asked(tmp_path):
    from diffusers import FluxPipeline

    from studio.demo import train_free

    train_free.main(["--quick", "--base", str(DEMO), "--out", str(tmp_path / "demo"), "--work", str(tmp_path / "w"),
                     "--threads", "1", "--captions", "template", "--grow-single", "2", "--train-blocks", "new"])
    a, b = FluxPipeline.from_pretrained(DEMO).transformer, FluxPipeline.from_pretrained(tmp_path / "demo").transformer
    n = len(a.single_transformer_blocks)
    assert b.config.num_single_layers == n + 2
    new = {k: v for k, v in b.state_dict().items() if k.startswith(f"single_transformer_blocks.{n}")}
    assert new and any(v.abs().sum() > 0 for k, v in new.items() if "norm.linear" in k)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    phase = json.loads((tmp_path / "demo" / "studio.json").read_text())["training"]["phases"][-1]
    assert (phase["grow_single"], phase["train_blocks"]) == (2, "new")
    # and the shipped ControlNet, grown for it, loads plainly with a zero residual for the new blocks
    import shutil

    from diffusers import FluxControlNetModel

    from studio.demo import grow

    net_dir = tmp_path / "demo-union"
    shutil.copytree(DEMO.parent / "controlnet" / "demo-union", net_dir)
    grow.main(["--controlnet", str(net_dir), "--base", str(tmp_path / "demo"), "--trained", str(n)])
    net = FluxControlNetModel.from_pretrained(net_dir)
    assert net.config.num_single_layers == 3 and not net.controlnet_single_blocks[2].weight.any()
    record = json.loads((net_dir / "studio.json").read_text())["training"]
    assert record["transformer_single_blocks"] == n + 2 and record["grown"][-1]["single_layers"] == [2, 3]


def test_free_stage_can_train_a_fresh_wider_transformer(tmp_path):
    from diffusers import FluxPipeline

    from studio.demo import train_free

    train_free.main(["--quick", "--base", str(DEMO), "--out", str(tmp_path / "demo"), "--work", str(tmp_path / "w"),
                     "--threads", "1", "--captions", "template", "--fresh-heads", "6", "--keep-base"])
    a, b = FluxPipeline.from_pretrained(DEMO), FluxPipeline.from_pretrained(tmp_path / "demo")
    ca, cb = a.transformer.config, b.transformer.config
    assert (cb.num_attention_heads, cb.attention_head_dim) == (6, 32) and ca.num_attention_heads == 4
    assert (cb.num_layers, cb.num_single_layers) == (ca.num_layers, ca.num_single_layers)
    # only the transformer is new: the text encoders and the VAE are the base's, bit for bit
    for part in ("text_encoder", "text_encoder_2", "vae"):
        sa, sb = getattr(a, part).state_dict(), getattr(b, part).state_dict()
        assert all(torch.equal(v, sb[k]) for k, v in sa.items()), part
    phase = json.loads((tmp_path / "demo" / "studio.json").read_text())["training"]["phases"][-1]
    assert phase["fresh_heads"] == 6 and phase["keep_base"]


def test_text_stage_trains_only_the_text_encoders(tmp_path):
    from diffusers import FluxPipeline

    import shutil

    from studio.demo import train_text

    with pytest.raises(SystemExit, match="already went through"):  # the shipped base learned already
        train_text.main(["--quick", "--base", str(DEMO), "--out", str(tmp_path / "x"), "--work", str(tmp_path / "x")])
    base = tmp_path / "base"  # stands in for the first model: the shipped one without the record
    shutil.copytree(DEMO, base)
    meta = json.loads((base / "studio.json").read_text())
    meta["training"]["phases"] = []
    (base / "studio.json").write_text(json.dumps(meta))
    train_text.main(["--quick", "--base", str(base), "--out", str(tmp_path / "demo"), "--work", str(tmp_path / "w")])
    meta = json.loads((tmp_path / "demo" / "studio.json").read_text())
    phase = meta["training"]["phases"][-1]
    assert phase["stage"] == "free wording (text encoders)" and phase["match"] == "set"
    assert phase["colour_free"] == "keep"
    assert meta.get("ip_adapter") == json.loads((DEMO / "studio.json").read_text()).get("ip_adapter")
    assert "shape" in meta["vocabulary"]
    a, b = FluxPipeline.from_pretrained(base), FluxPipeline.from_pretrained(tmp_path / "demo")
    for part in ("transformer", "vae"):  # bit for bit: every adapter trained on them still fits
        assert all(torch.equal(x, y) for x, y in zip(getattr(a, part).state_dict().values(),
                                                      getattr(b, part).state_dict().values()))
    assert not all(torch.equal(x, y) for x, y in zip(a.text_encoder_2.state_dict().values(),
                                                     b.text_encoder_2.state_dict().values()))
    assert b.tokenizer_2("a red shape").input_ids[2] != b.tokenizer_2.unk_token_id


def test_decoder_stage_trains_only_the_decoder_and_records_the_judge(tmp_path):
    from diffusers import FluxPipeline

    import shutil

    from studio.demo import train_decoder

    base = tmp_path / "base"  # the shipped model without the decoder stage's record
    shutil.copytree(DEMO, base)
    meta = json.loads((base / "studio.json").read_text())
    meta["training"]["phases"] = [p for p in meta["training"]["phases"] if p["stage"] != "outlines (VAE decoder)"]
    (base / "studio.json").write_text(json.dumps(meta))
    train_decoder.main(["--quick", "--base", str(base), "--out", str(tmp_path / "demo"), "--work", str(tmp_path / "w"),
                        "--threads", "1"])
    meta = json.loads((tmp_path / "demo" / "studio.json").read_text())
    phase = meta["training"]["phases"][-1]
    assert phase["stage"] == "outlines (VAE decoder)" and set(phase["judge_after"]) == {"filled", "hollow"}
    with pytest.raises(SystemExit, match="already went through"):
        train_decoder.main(["--quick", "--base", str(tmp_path / "demo"), "--out", str(tmp_path / "x"),
                            "--work", str(tmp_path / "x")])
    a, b = FluxPipeline.from_pretrained(base), FluxPipeline.from_pretrained(tmp_path / "demo")
    same = lambda x, y: all(torch.equal(p, q) for p, q in zip(x.state_dict().values(), y.state_dict().values()))  # noqa: E731
    assert same(a.transformer, b.transformer) and same(a.vae.encoder, b.vae.encoder)  # the latent space is kept
    assert not same(a.vae.decoder, b.vae.decoder)


def test_decoder_anchor_bank_holds_ip_adapter_pictures_and_the_first_decoders_view_of_them():
    from diffusers import FluxPipeline

    from studio.demo.train_decoder import anchor_bank

    pipe = FluxPipeline.from_pretrained(DEMO)
    pipe.set_progress_bar_config(disable=True)
    meta = json.loads((DEMO / "studio.json").read_text())
    ip = DEMO.parent / "ip_adapter" / "demo"
    z, images = anchor_bank(pipe, meta, 2, seed=3, ip_adapter=ip, n_ip=2)
    assert z.shape[0] == images.shape[0] == 4 and images.shape[1:] == (3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(pipe.vae.decode(z[2:]).sample, images[2:], atol=1e-4)  # the targets: this decoder
    assert not torch.equal(z[2], z[3])
    assert getattr(pipe, "image_encoder", None) is None  # the adapter is unloaded again


def test_snapped_anchor_pictures_are_clean_renders_of_what_was_drawn_and_only_when_right():
    """--snap: a picture right in every part becomes the render of its fitted shape (the judge's
    outline offset drops to ~0); a picture with a wrong part keeps the first decoder's view."""
    from dataclasses import replace

    from studio.demo.classify import classify
    from studio.demo.dataset import random_spec, render
    from studio.demo.train_decoder import snapped_pictures
    from studio.demo.trainkit import to_tensor, to_uint8

    rng = np.random.default_rng(7)
    specs = [random_spec(rng) for _ in range(3)]
    drawn = [replace(s, cx=s.cx + 0.6, r=s.r * 1.04) for s in specs]  # a little off, as a model draws
    pictures = to_tensor(np.stack([render(d) for d in drawn]))
    pictures = pictures + 0.04 * torch.randn(pictures.shape, generator=torch.Generator().manual_seed(0))
    wrong = replace(specs[2], colour="purple" if specs[2].colour != "purple" else "green")
    out, n = snapped_pictures(pictures, [specs[0], specs[1], wrong])
    assert n == 2 and torch.equal(out[2], pictures[2])
    for i, im in enumerate(to_uint8(out[:2])):
        v = classify(im)
        assert (v.shape, v.colour, v.position) == (specs[i].shape, specs[i].colour, specs[i].position)
        assert v.offset < 0.1 and abs(v.centre[0] - drawn[i].cx) < 0.5  # what was drawn, drawn clean


def test_text_meanings_fill_what_a_prompt_leaves_out_the_same_way_every_time():
    from studio.demo.captions import Parts, compose
    from studio.demo.train_text import matched, meaning, pairs

    assert compose(meaning(Parts("red", "circle"))) == "a red circle in the centre on a white background"
    assert meaning(Parts("white", "square")).background == "black"
    m = meaning(Parts(None, "triangle", "left", "blue"), colour_free="fill")
    assert m == meaning(Parts(None, "triangle", "left", "blue"), "fill") and m.colour not in (None, "blue")
    assert meaning(Parts(None, "triangle")) == Parts(None, "triangle", "centre", "white")  # the IP-Adapter's case
    assert meaning(Parts("red", None)).shape in ("circle", "square", "triangle")
    texts, targets = pairs()
    assert "a red circle at the left on a blue background" in texts  # the template means itself
    assert len(set(texts)) == len(texts)
    from studio.demo.cases import HELD_OUT

    assert not HELD_OUT & set(texts)
    # The set loss ignores token order: a permuted target matches back exactly.
    seq = torch.randn(2, 16, 8)
    assert torch.equal(matched(seq, seq[:, torch.randperm(16)]), seq)


def test_controlnet_stage_saves_a_union_net_that_loads_plainly(tmp_path):
    from diffusers import FluxControlNetModel

    from studio.demo import train_controlnet

    out = tmp_path / "cn"
    train_controlnet.main(["--quick", "--base", str(DEMO), "--out", str(out), "--work", str(tmp_path / "w"),
                           "--threads", "1"])
    net = FluxControlNetModel.from_pretrained(out)
    assert net.config.num_mode == 10 and net.dtype == torch.float32
    assert json.loads((out / "studio.json").read_text())["control_modes"] == {"canny": 0, "depth": 2}


def test_ip_adapter_stage_saves_the_flux_layout(tmp_path):
    from diffusers import FluxPipeline
    from safetensors import safe_open

    from studio.demo import train_ip_adapter
    from studio.demo.adapters_eval import load_ip

    out = tmp_path / "ip"
    train_ip_adapter.main(["--quick", "--base", str(DEMO), "--out", str(out), "--work", str(tmp_path / "w"),
                           "--threads", "1"])
    with safe_open(out / "ip_adapter.safetensors", framework="pt") as f:
        keys = set(f.keys())
    assert {"image_proj.proj.weight", "image_proj.norm.weight", "ip_adapter.0.to_k_ip.weight",
            "ip_adapter.1.to_v_ip.weight"} <= keys
    pipe = FluxPipeline.from_pretrained(DEMO)
    load_ip(pipe, out)
    assert pipe.image_encoder.dtype == torch.float32 and pipe.feature_extractor.size["shortest_edge"] == 32


def test_ip_adapter_teacher_phase_learns_toward_the_base_with_the_colour_named(tmp_path):
    """The teacher's pass is the base exactly (adapter scale 0), the scales come back after it, and
    the phase follows the data phase in the same resumable run."""
    from diffusers import FluxPipeline

    from studio.demo import train_ip_adapter as T
    from studio.demo.adapters_eval import load_ip

    out, work = tmp_path / "ip", tmp_path / "w"
    with pytest.raises(SystemExit):  # the teacher's prompt is the student's with the colour: template only
        T.main(["--quick", "--base", str(DEMO), "--out", str(out), "--work", str(work), "--teacher-steps", "2"])
    record = T.main(["--quick", "--base", str(DEMO), "--out", str(out), "--work", str(work), "--threads", "1",
                     "--captions", "template", "--teacher-steps", "2"])
    assert record["teacher_steps"] == 2 and torch.load(work / "state.pt", weights_only=False)["step"] == 5
    base, pipe = FluxPipeline.from_pretrained(DEMO), FluxPipeline.from_pretrained(DEMO)
    load_ip(pipe, out)
    gen = torch.Generator().manual_seed(0)
    x, seq = torch.randn(1, 64, 64, generator=gen), torch.randn(1, 16, 64, generator=gen)
    kw = dict(hidden_states=x, timestep=torch.tensor([0.5]), pooled_projections=torch.randn(1, 64, generator=gen),
              encoder_hidden_states=seq, txt_ids=torch.zeros(16, 3), img_ids=torch.zeros(64, 3), return_dict=False)
    emb = torch.randn(1, 1, 64, generator=gen)
    with torch.no_grad():
        plain = base.transformer(**kw)[0]
        with T.ip_scale(pipe.transformer, 0.0):
            off = pipe.transformer(**kw, joint_attention_kwargs={"ip_adapter_image_embeds": [emb]})[0]
        on = pipe.transformer(**kw, joint_attention_kwargs={"ip_adapter_image_embeds": [emb]})[0]
    assert torch.equal(off, plain) and not torch.equal(on, plain)
    assert all(p.scale == [1.0] for p in T.ip_processors(pipe.transformer))


def test_lora_stages_save_loadable_files_and_big_composes_with_outline(tmp_path):
    from diffusers import FluxPipeline
    from safetensors import safe_open

    from studio.demo import train_lora

    outline, big = tmp_path / "demo-outline.safetensors", tmp_path / "demo-big.safetensors"
    common = ["--quick", "--base", str(DEMO), "--threads", "1"]
    train_lora.main(["--effect", "outline", "--out", str(outline), "--work", str(tmp_path / "w1"), *common])
    record = train_lora.main(["--effect", "big", "--out", str(big), "--work", str(tmp_path / "w2"), *common])
    assert record["compose_with"] == str(outline)
    with safe_open(big, framework="pt") as f:
        assert f.metadata()["modelspec.title"] == "Demo big"
    pipe = FluxPipeline.from_pretrained(DEMO)
    pipe.load_lora_weights(str(outline), adapter_name="outline")
    pipe.load_lora_weights(str(big), adapter_name="big")
    pipe.set_adapters(["outline", "big"], [1.0, 1.0])


def test_an_interrupted_stage_goes_on_from_its_saved_state(tmp_path):
    """Three steps, then the same command with two more steps to go: it resumes at step 3."""
    from studio.demo import train_lora

    work, out = tmp_path / "w", tmp_path / "demo-outline.safetensors"
    common = ["--effect", "outline", "--quick", "--base", str(DEMO), "--work", str(work), "--out", str(out),
              "--threads", "1"]
    train_lora.main(common)
    state = torch.load(work / "state.pt", weights_only=False)
    assert state["step"] == 3 and state["extra"]["cpu_time_s"] > 0
    first = out.read_bytes()
    train_lora.main([*common, "--steps", "5"])
    assert torch.load(work / "state.pt", weights_only=False)["step"] == 5
    assert out.read_bytes() != first


def test_lora_focus_steps_follow_the_main_steps_and_say_so_in_the_metadata(tmp_path):
    from safetensors import safe_open

    from studio.demo import train_lora

    work, out = tmp_path / "w", tmp_path / "demo-outline.safetensors"
    common = ["--effect", "outline", "--quick", "--base", str(DEMO), "--work", str(work), "--out", str(out),
              "--threads", "1"]
    with pytest.raises(SystemExit):
        train_lora.main([*common, "--focus-shapes", "hexagon=2"])
    record = train_lora.main([*common, "--focus-steps", "2", "--focus-shapes", "triangle=3"])
    assert record["focus_shapes"] == {"circle": 1.0, "square": 1.0, "triangle": 3.0}
    assert torch.load(work / "state.pt", weights_only=False)["step"] == 5
    with safe_open(out, framework="pt") as f:
        assert f.metadata()["ss_steps"] == "5"


def test_resumable_state_restores_modules_optimizer_and_random_streams(tmp_path):
    from studio.demo.trainkit import Resumable

    net = torch.nn.Linear(3, 3)
    opt = torch.optim.AdamW(net.parameters())
    gen, rng = torch.Generator().manual_seed(1), np.random.default_rng(1)
    Resumable(tmp_path, net=net, opt=opt, gen=gen, rng=rng).save(7, wall_time_s=1.0)
    expect = (torch.randn(2, generator=gen), rng.random(), net.weight.detach().clone())
    with torch.no_grad():
        net.weight.zero_()
    gen2, rng2 = torch.Generator().manual_seed(99), np.random.default_rng(99)
    step, extra = Resumable(tmp_path, net=net, opt=opt, gen=gen2, rng=rng2).load()
    assert (step, extra) == (7, {"wall_time_s": 1.0})
    assert torch.equal(torch.randn(2, generator=gen2), expect[0]) and rng2.random() == expect[1]
    assert torch.equal(net.weight, expect[2])


def test_lora_band_per_shape_sets_the_outline_target_and_is_recorded(tmp_path):
    from safetensors import safe_open

    from studio.demo import train_lora as T
    from studio.demo.dataset import inradius, random_spec

    rng = np.random.default_rng(0)
    spec = next(s for s in (random_spec(rng) for _ in range(100)) if s.shape == "triangle")
    wide = replace(T.EFFECTS["outline"], bands=(("triangle", 0.46),))
    rho = inradius("triangle", spec.r)
    assert wide.spec_and_band(spec, 1.0)[1] == pytest.approx(0.46 * rho)
    assert T.EFFECTS["outline"].spec_and_band(spec, 1.0)[1] == pytest.approx(T.BAND_RHO * rho)
    assert wide.spec_and_band(spec, 0.0)[1] == pytest.approx(rho)          # weight 0: the filled shape
    work, out = tmp_path / "w", tmp_path / "demo-outline.safetensors"
    common = ["--effect", "outline", "--quick", "--base", str(DEMO), "--work", str(work), "--out", str(out),
              "--threads", "1"]
    with pytest.raises(SystemExit):                     # a hole of (1 - 0.6)^2 = 16%: the judge sees it filled
        T.main([*common, "--band", "triangle=0.6"])
    record = T.main([*common, "--band", "triangle=0.46"])
    assert record["band"] == {"triangle": 0.46}
    with safe_open(out, framework="pt") as f:
        assert "0.46x for triangles" in f.metadata()["modelspec.description"]
