"""Tiny real pipelines built from configs, offline: the install check and the tests' models.

Everything is random but deterministic (``seed``); tokenizers are made in memory (a CLIP
byte-level BPE vocab and a T5 unigram vocab), so nothing touches the hub. The pipelines are the
stock diffusers classes; saved with ``save_pretrained`` they load back through the studio's own
loader exactly like a hub model.
"""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = ("a", "an", "the", "red", "green", "blue", "yellow", "white", "black", "cat", "dog",
         "circle", "square", "triangle", "photo", "of", "on", "in", "at", "with", "background")


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def clip_tokenizer(model_max_length: int = 77):
    """A byte-level BPE tokenizer of the CLIP kind: every byte, plus whole words of WORDS."""
    from transformers import CLIPTokenizer

    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for piece in chars + [c + "</w>" for c in chars]:
        vocab.setdefault(piece, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in WORDS:  # merge left to right: r e -> re, re d</w> -> red</w>
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            a, b = parts[0], parts[1]
            merges.append((a, b))
            vocab.setdefault(a + b, len(vocab))
            parts = [a + b] + parts[2:]
    merges = list(dict.fromkeys(merges))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab.setdefault(special, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


def t5_tokenizer(model_max_length: int = 512):
    """A unigram tokenizer of the T5 kind: letters, digits, punctuation and WORDS."""
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    for word in WORDS:
        pieces.append(("▁" + word, -1.0))
    for ch in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;!?'\"()-_/":
        pieces.append((ch, -5.0))
        pieces.append(("▁" + ch, -4.0))
    seen: set[str] = set()
    vocab = [p for p in pieces if not (p[0] in seen or seen.add(p[0]))]
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=model_max_length)


def _clip_text(vocab_size: int, hidden: int, projection: bool = False, seed: int = 0):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    cfg = CLIPTextConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                         projection_dim=hidden, bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
                         pad_token_id=vocab_size - 1, hidden_act="gelu")
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg).eval()


def _t5_text(vocab_size: int, d_model: int, seed: int = 0):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=vocab_size, d_model=d_model, d_ff=d_model * 2, d_kv=8, num_layers=2,
                   num_heads=2, relative_attention_num_buckets=8, decoder_start_token_id=0,
                   pad_token_id=0, eos_token_id=1)
    return T5EncoderModel(cfg).eval()


def build_tiny_flux_pipeline(seed: int = 0, *, guidance_embeds: bool = False, max_length: int = 32):
    """FluxPipeline: ~100k-parameter transformer, VAE with scale factor 8, 32-wide encoders."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    tok, tok2 = clip_tokenizer(77), t5_tokenizer(max_length)
    text_encoder = _clip_text(len(tok), 32, seed=seed)
    text_encoder_2 = _t5_text(len(tok2), 32, seed=seed + 1)
    torch.manual_seed(seed + 2)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4,
                        sample_size=64, use_quant_conv=False, use_post_quant_conv=False,
                        scaling_factor=1.0, shift_factor=0.0).eval()
    torch.manual_seed(seed + 3)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, out_channels=None, num_layers=1,
                                         num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                                         joint_attention_dim=32, pooled_projection_dim=32,
                                         guidance_embeds=guidance_embeds, axes_dims_rope=(4, 6, 6)).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    return FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tok,
                        text_encoder_2=text_encoder_2, tokenizer_2=tok2, transformer=transformer)


def _sd_vae(seed: int, latent_channels: int = 4):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=latent_channels,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4,
                         sample_size=64).eval()


def _sd_scheduler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  num_train_timesteps=1000, timestep_spacing="leading", steps_offset=1)


def build_tiny_sd15_pipeline(seed: int = 0):
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    tok = clip_tokenizer(77)
    text_encoder = _clip_text(len(tok), 32, seed=seed)
    torch.manual_seed(seed + 1)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(16, 32), norm_num_groups=8,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                cross_attention_dim=32, attention_head_dim=4).eval()
    return StableDiffusionPipeline(vae=_sd_vae(seed + 2), text_encoder=text_encoder, tokenizer=tok, unet=unet,
                                   scheduler=_sd_scheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def build_tiny_sdxl_pipeline(seed: int = 0):
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

    tok, tok2 = clip_tokenizer(77), clip_tokenizer(77)
    text_encoder = _clip_text(len(tok), 32, seed=seed)
    text_encoder_2 = _clip_text(len(tok2), 32, projection=True, seed=seed + 1)
    torch.manual_seed(seed + 2)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(16, 32), norm_num_groups=8,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                cross_attention_dim=64, attention_head_dim=(2, 4), use_linear_projection=True,
                                addition_embed_type="text_time", addition_time_embed_dim=8,
                                transformer_layers_per_block=(1, 1),
                                projection_class_embeddings_input_dim=6 * 8 + 32).eval()
    return StableDiffusionXLPipeline(vae=_sd_vae(seed + 3), text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tok, tokenizer_2=tok2, unet=unet, scheduler=_sd_scheduler(),
                                     force_zeros_for_empty_prompt=True)


def build_tiny_sd3_pipeline(seed: int = 0, *, max_length: int = 32):
    """StableDiffusion3Pipeline: two CLIPs with projection (pooled 32 + 32) and a T5, a one-layer
    SD3 transformer on a 16-channel VAE (SD3's inpaint pipeline insists on 16)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    tok, tok2, tok3 = clip_tokenizer(77), clip_tokenizer(77), t5_tokenizer(max_length)
    text_encoder = _clip_text(len(tok), 32, projection=True, seed=seed)
    text_encoder_2 = _clip_text(len(tok2), 32, projection=True, seed=seed + 1)
    text_encoder_3 = _t5_text(len(tok3), 32, seed=seed + 2)
    torch.manual_seed(seed + 3)
    transformer = SD3Transformer2DModel(sample_size=8, patch_size=1, in_channels=16, num_layers=1,
                                        attention_head_dim=8, num_attention_heads=4, caption_projection_dim=32,
                                        joint_attention_dim=32, pooled_projection_dim=64, out_channels=16).eval()
    vae = _sd_vae(seed + 4, latent_channels=16)
    vae.register_to_config(shift_factor=0.0, scaling_factor=1.0)
    return StableDiffusion3Pipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=vae,
                                    text_encoder=text_encoder, tokenizer=tok, text_encoder_2=text_encoder_2,
                                    tokenizer_2=tok2, text_encoder_3=text_encoder_3, tokenizer_3=tok3,
                                    transformer=transformer)


def build_tiny_flux_fill_pipeline(seed: int = 0, *, max_length: int = 32):
    """FluxFillPipeline (a FLUX.1 Fill model): the tiny FLUX parts, with a transformer that also reads
    the packed masked-image latents (16) and the mask (8x8 pixels per latent, packed 2x2: 256)."""
    from diffusers import FluxFillPipeline, FluxTransformer2DModel

    base = build_tiny_flux_pipeline(seed, max_length=max_length)
    torch.manual_seed(seed + 3)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16 + 16 + 256, out_channels=16, num_layers=1,
                                         num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                                         joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
                                         axes_dims_rope=(4, 6, 6)).eval()
    parts = {k: v for k, v in base.components.items() if k not in ("image_encoder", "feature_extractor")}
    return FluxFillPipeline(**{**parts, "transformer": transformer})


def build_tiny_sd15_inpaint_pipeline(seed: int = 0):
    """StableDiffusionInpaintPipeline on an inpainting UNet: 9 input channels (latents, mask, masked image)."""
    from diffusers import StableDiffusionInpaintPipeline, UNet2DConditionModel

    base = build_tiny_sd15_pipeline(seed)
    torch.manual_seed(seed + 1)
    unet = UNet2DConditionModel(sample_size=8, in_channels=9, out_channels=4, layers_per_block=1,
                                block_out_channels=(16, 32), norm_num_groups=8,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                cross_attention_dim=32, attention_head_dim=4).eval()
    return StableDiffusionInpaintPipeline(**{**base.components, "unet": unet}, requires_safety_checker=False)


BUILDERS = {"flux": build_tiny_flux_pipeline, "sd15": build_tiny_sd15_pipeline, "sdxl": build_tiny_sdxl_pipeline,
            "sd3": build_tiny_sd3_pipeline, "flux-fill": build_tiny_flux_fill_pipeline,
            "sd15-inpaint": build_tiny_sd15_inpaint_pipeline}


def save_tiny(kind: str, folder: str | Path, seed: int = 0) -> Path:
    folder = Path(folder)
    BUILDERS[kind](seed).save_pretrained(folder, safe_serialization=True)
    return folder


def save_tiny_controlnet(kind: str, base_folder: str | Path, folder: str | Path, *, union: bool = False,
                         seed: int = 0, num_mode: int = 10) -> Path:
    """A ControlNet for a tiny base (``flux``: FluxControlNetModel, a union net of ``num_mode`` modes
    with ``union``; ``sd15``/``sdxl``: ControlNetModel, ``sdxl`` with ``union``: ControlNetUnionModel),
    copied from the base as diffusers does, with the zero-initialised output layers randomised so
    that a scale visibly changes the image."""
    import inspect

    import diffusers

    base_folder, folder = Path(base_folder), Path(folder)
    torch.manual_seed(seed)
    if kind == "flux":
        transformer = diffusers.FluxTransformer2DModel.from_pretrained(base_folder / "transformer")
        net = diffusers.FluxControlNetModel.from_transformer(transformer, num_layers=1, num_single_layers=0,
                                                             attention_head_dim=16, num_attention_heads=2)
        if union:
            state = net.state_dict()
            config = {k: v for k, v in net.config.items() if not k.startswith("_")}   # "_use_default_values" would
            net = diffusers.FluxControlNetModel.from_config({**config, "num_mode": num_mode})   # reset num_mode
            net.load_state_dict(state, strict=False)
    elif union:
        # only from_config with these keyword arguments builds a tiny one (the config's keys are ignored)
        unet = diffusers.UNet2DConditionModel.from_pretrained(base_folder / "unet")
        takes = set(inspect.signature(diffusers.ControlNetUnionModel.__init__).parameters)
        config = {k: v for k, v in unet.config.items() if k in takes}
        net = diffusers.ControlNetUnionModel.from_config(
            {**config, "conditioning_embedding_out_channels": (8, 8, 16, unet.config.block_out_channels[0])},
            num_trans_channel=unet.config.block_out_channels[0], num_proj_channel=unet.config.block_out_channels[0],
            num_trans_head=2)
        net.down_blocks.load_state_dict(unet.down_blocks.state_dict(), strict=False)
    else:
        unet = diffusers.UNet2DConditionModel.from_pretrained(base_folder / "unet")
        net = diffusers.ControlNetModel.from_unet(unet)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if "controlnet_" in name and ("blocks" in name or "mid_block" in name or "x_embedder" in name):
                param.normal_(0, 0.3)
    net.save_pretrained(folder, safe_serialization=True)
    return folder


# -- IP-Adapters ---------------------------------------------------------------------------------
def tiny_image_encoder(projection_dim: int = 32, seed: int = 0):
    """A CLIPVisionModelWithProjection of 32 px and 32 wide (what IP-Adapters encode images with)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8, projection_dim=projection_dim)
    return CLIPVisionModelWithProjection(cfg).eval()


def tiny_ip_adapter_state(kind: str, base_pipe, *, clip_dim: int = 32, seed: int = 0,
                          std: float = 0.5) -> dict[str, torch.Tensor]:
    """Random IP-Adapter weights shaped for ``base_pipe``'s transformer/UNet, in the file layout
    the family's adapters ship in: XLabs' for FLUX (``ip_adapter_proj_model.*``,
    ``double_blocks.{i}.processor.ip_adapter_double_stream_{k,v}_proj.*``), h94's for SD/SDXL
    (``image_proj.*``, ``ip_adapter.{1,3,5..}.to_{k,v}_ip.weight``). Every layer is random with
    ``std`` (trained adapters start their output layers at zero; a scale must show here)."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * std

    out: dict[str, torch.Tensor] = {}
    if kind == "flux":
        model = base_pipe.transformer
        cross, inner, proj = model.config.joint_attention_dim, model.inner_dim, "ip_adapter_proj_model"
        doubles = [n for n in model.attn_processors if not n.startswith("single_transformer_blocks")]
        for i, _ in enumerate(doubles):
            for which in ("k", "v"):
                name = f"double_blocks.{i}.processor.ip_adapter_double_stream_{which}_proj"
                out[f"{name}.weight"], out[f"{name}.bias"] = rand(inner, cross), rand(inner)
    elif kind in ("sd15", "sdxl"):
        model = base_pipe.unet
        cfg, cross, proj = model.config, model.config.cross_attention_dim, "image_proj"
        key = 1
        for name in model.attn_processors:
            if name.endswith("attn1.processor"):          # self-attention: no image tokens
                continue
            if name.startswith("mid_block"):
                hidden = cfg.block_out_channels[-1]
            elif name.startswith("up_blocks"):
                hidden = list(reversed(cfg.block_out_channels))[int(name[len("up_blocks.")])]
            else:
                hidden = cfg.block_out_channels[int(name[len("down_blocks.")])]
            out[f"ip_adapter.{key}.to_k_ip.weight"] = rand(hidden, cross)
            out[f"ip_adapter.{key}.to_v_ip.weight"] = rand(hidden, cross)
            key += 2
    else:
        raise ValueError(f"no tiny IP-Adapter layout for {kind!r}; one of flux, sd15, sdxl")
    out[f"{proj}.proj.weight"], out[f"{proj}.proj.bias"] = rand(cross * 4, clip_dim), rand(cross * 4)
    out[f"{proj}.norm.weight"], out[f"{proj}.norm.bias"] = 1.0 + rand(cross), rand(cross)
    return out


def save_tiny_ip_adapter(kind: str, folder: str | Path, base_pipe, *, seed: int = 0) -> Path:
    """An IP-Adapter folder for ``base_pipe`` as the studio reads one (``models/ip_adapter/<name>/``):
    ``ip_adapter.safetensors`` and ``image_encoder/`` (a tiny CLIP vision model)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tiny_ip_adapter_state(kind, base_pipe, seed=seed).items()},
              str(folder / "ip_adapter.safetensors"))
    tiny_image_encoder(seed=seed).save_pretrained(folder / "image_encoder", safe_serialization=True)
    return folder


# -- preprocessor models -----------------------------------------------------------------------
def save_tiny_depth(kind: str, folder: str | Path, seed: int = 0) -> Path:
    """A depth-estimation model folder from a tiny config, as transformers' ``pipeline`` reads one:
    ``depth_anything`` (Depth Anything, the V2 architecture, on a tiny DINOv2) or ``dpt``."""
    from transformers import (DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTConfig,
                              DPTForDepthEstimation, DPTImageProcessor)

    folder = Path(folder)
    torch.manual_seed(seed)
    if kind == "depth_anything":
        backbone = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                image_size=64, patch_size=8, out_features=["stage1", "stage2"],
                                reshape_hidden_states=False)
        model = DepthAnythingForDepthEstimation(DepthAnythingConfig(
            backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[16, 32], fusion_hidden_size=16,
            head_hidden_size=8, reassemble_factors=[2, 1], patch_size=8))
        processor = DPTImageProcessor(size={"height": 64, "width": 64}, keep_aspect_ratio=True, ensure_multiple_of=8)
    elif kind == "dpt":
        model = DPTForDepthEstimation(DPTConfig(
            hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=64,
            patch_size=8, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 8, 16, 16], fusion_hidden_size=16,
            reassemble_factors=[4, 2, 1, 0.5]))
        processor = DPTImageProcessor(size={"height": 64, "width": 64})
    else:
        raise ValueError(f"no tiny depth model {kind!r}; one of depth_anything, dpt")
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
