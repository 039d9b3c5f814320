"""Building blocks of the demo model: offline tokenizers, tiny text encoders, VAE, transformer.

All configs live here so that training, tests and docs agree on one architecture.
"""

from __future__ import annotations

import copy

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTokenizer, PreTrainedTokenizerFast, T5Config, T5EncoderModel,
                          T5TokenizerFast)

from .dataset import token_words

TEXT_LEN = 16  # max_sequence_length (T5) and CLIP model_max_length used in training and sampling
TEXT_DIM = 64
SCHEDULER_SHIFT = 3.0  # static shift (use_dynamic_shifting=False): the sampler then matches training

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _bpe(word: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    parts = list(word)
    while len(parts) > 1:
        pairs = [(ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
        rank, i = min(pairs)
        if rank == 1 << 30:
            break
        parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2 :]
    return parts


def build_clip_tokenizer(words: list[str] | None = None, max_length: int = TEXT_LEN) -> PreTrainedTokenizerFast:
    """A byte-pair tokenizer in which every vocabulary word is one token (letters are the fallback).

    Token ids follow `words` (default: `token_words()`, the first words, then the added ones)."""
    words = words or token_words()
    vocab: dict[str, int] = {}

    def add(tok: str) -> None:
        vocab.setdefault(tok, len(vocab))

    add(BOS)
    add(EOS)
    for c in sorted(set("".join(words))):
        add(c)
        add(c + "</w>")
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for w in words:
        symbols = list(w[:-1]) + [w[-1] + "</w>"]
        # Add merges (at lowest priority) until the word is a single token; a merge added later
        # can never split a word that is already one token.
        while len(parts := _bpe(symbols, ranks)) > 1:
            pair = (parts[0], parts[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            add(pair[0] + pair[1])
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length, pad_token=EOS)
    return letters_only(tok)


def build_t5_tokenizer(words: list[str] | None = None, max_length: int = TEXT_LEN) -> PreTrainedTokenizerFast:
    words = words or token_words()
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [("\u2581" + w, -1.0) for w in words]
    return letters_only(T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=max_length))


def letters_only(tok) -> PreTrainedTokenizerFast:
    """The same tokenizer, lowercasing the text and reading anything but letters as a space.

    "A red circle." then tokenizes as "a red circle" (T5 is case-sensitive and would read "A" and
    "." as unknown; CLIP would read "." as an end-of-text token). Words of the vocabulary keep
    their token ids (studio.models.notices.words_of splits prompts the same way). The normalizer
    lives in tokenizer.json; the generic `PreTrainedTokenizerFast` (what model_index.json names)
    loads that file as it is, where CLIPTokenizer / T5Tokenizer would rebuild their own.
    """
    from tokenizers import Regex, normalizers

    backend = copy.deepcopy(tok.backend_tokenizer)
    backend.normalizer = normalizers.Sequence([
        normalizers.NFC(), normalizers.Lowercase(), normalizers.Replace(Regex(r"[^\p{L}\s]+"), " "),
        normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip(),
    ])
    special = {k: getattr(tok, k) for k in ("bos_token", "eos_token", "unk_token", "pad_token") if getattr(tok, k)}
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=tok.model_max_length, **special)


def build_text_encoders(clip_tok, t5_tok, seed: int = 0) -> tuple[CLIPTextModel, T5EncoderModel]:
    """Small frozen random text encoders (their random token embeddings are distinct enough)."""
    torch.manual_seed(seed)
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(clip_tok),
            hidden_size=TEXT_DIM,
            intermediate_size=2 * TEXT_DIM,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=TEXT_LEN,
            bos_token_id=clip_tok.convert_tokens_to_ids(BOS),
            eos_token_id=clip_tok.convert_tokens_to_ids(EOS),
            pad_token_id=clip_tok.convert_tokens_to_ids(EOS),
        )
    )
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=len(t5_tok),
            d_model=TEXT_DIM,
            d_kv=16,
            d_ff=2 * TEXT_DIM,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=16,
            dropout_rate=0.0,
            pad_token_id=t5_tok.pad_token_id,
            eos_token_id=t5_tok.eos_token_id,
            decoder_start_token_id=t5_tok.pad_token_id,
        )
    )
    return clip.eval().requires_grad_(False), t5.eval().requires_grad_(False)


def build_vae(seed: int = 0) -> AutoencoderKL:
    """4x down (3 blocks): 64x64x3 <-> 16x16x16; pipeline vae_scale_factor = 4."""
    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=8,
        sample_size=64,
        use_quant_conv=False,
        use_post_quant_conv=False,
        mid_block_add_attention=False,
    )


def build_transformer(seed: int = 0, num_layers: int = 2, num_single_layers: int = 4,
                      heads: int = 4) -> FluxTransformer2DModel:
    """Schnell-style (no guidance embedding) tiny FLUX transformer: ``heads`` heads of 32 (128 wide)."""
    torch.manual_seed(seed)
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=num_layers,
        num_single_layers=num_single_layers,
        attention_head_dim=32,
        num_attention_heads=heads,
        joint_attention_dim=TEXT_DIM,
        pooled_projection_dim=TEXT_DIM,
        guidance_embeds=False,
        axes_dims_rope=(8, 12, 12),
    )


def build_scheduler() -> FlowMatchEulerDiscreteScheduler:
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=SCHEDULER_SHIFT, use_dynamic_shifting=False)


def assemble(vae, transformer, clip, t5, clip_tok, t5_tok) -> FluxPipeline:
    return FluxPipeline(
        scheduler=build_scheduler(),
        vae=vae,
        text_encoder=clip,
        tokenizer=clip_tok,
        text_encoder_2=t5,
        tokenizer_2=t5_tok,
        transformer=transformer,
    )


def shift_sigmas(u: torch.Tensor, shift: float = SCHEDULER_SHIFT) -> torch.Tensor:
    """The sampler's static time shift, applied to training noise levels so the two agree."""
    return shift * u / (1 + (shift - 1) * u)
