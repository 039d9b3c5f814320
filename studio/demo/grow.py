"""Grow a trained demo transformer by blocks that start as the identity.

`python -m studio.demo.grow --controlnet models/controlnet/demo-union --base models/demo` grows a
saved ControlNet for a base grown by `studio.demo.train_free --grow-single N`.

A FLUX single block adds `gate * proj_out(...)` to its input, and its gate comes from the block's
AdaLayerNormZeroSingle linear: with that linear zeroed the gate is 0 and the block returns its
input unchanged. New blocks are appended after the trained ones, so the grown transformer draws
bit for bit what the trained one drew, and every adapter trained on it still finds its blocks:

- LoRA keys (`single_transformer_blocks.{i}...`) and the IP-Adapter (double blocks only) keep
  their indices;
- a ControlNet's single-block residuals are spread over the single blocks by
  `index // ceil(blocks / residuals)`, so `grow_controlnet` gives it zero residuals for the new
  blocks (more single layers whose output projections are zero), and each trained block still
  receives the residual it was trained with.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from diffusers.models.transformers.transformer_flux import FluxSingleTransformerBlock


def identity_single_block(model, seed: int) -> FluxSingleTransformerBlock:
    """A single block for `model` (a FLUX transformer or ControlNet) that returns its input."""
    cfg = model.config
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        block = FluxSingleTransformerBlock(dim=cfg.num_attention_heads * cfg.attention_head_dim,
                                           num_attention_heads=cfg.num_attention_heads,
                                           attention_head_dim=cfg.attention_head_dim)
    with torch.no_grad():
        block.norm.linear.weight.zero_()
        block.norm.linear.bias.zero_()
    p = next(model.parameters())
    return block.to(device=p.device, dtype=p.dtype)


def grow_transformer(transformer, single: int, seed: int = 0) -> list[int]:
    """Append `single` identity single blocks; -> the indices of the new blocks."""
    if single < 0:
        raise ValueError(f"cannot grow by {single} blocks")
    blocks = transformer.single_transformer_blocks
    first = len(blocks)
    for k in range(single):
        blocks.append(identity_single_block(transformer, seed + k))
    transformer.register_to_config(num_single_layers=len(blocks))
    return list(range(first, len(blocks)))


def new_block_parameters(transformer, first: int):
    """The parameters of single blocks `first`... (the grown ones)."""
    return [p for b in transformer.single_transformer_blocks[first:] for p in b.parameters()]


def grow_controlnet(controlnet, trained: int, transformer_single: int, seed: int = 0) -> int:
    """Give a FluxControlNetModel zero residuals for the single blocks a grown transformer added, so
    each trained block keeps the residual it was trained with. `trained`: the single blocks of the
    transformer it was trained with; `transformer_single`: the grown transformer's.
    -> how many single layers the ControlNet has now."""
    have = len(controlnet.single_transformer_blocks)
    if have == 0:
        return 0
    interval = -(-trained // have)
    want = -(-transformer_single // interval)
    if trained % interval or -(-transformer_single // want) != interval:
        raise ValueError(f"{transformer_single} single blocks cannot keep the residual mapping of "
                         f"{have} residuals over {trained} blocks")
    for k in range(want - have):
        block = identity_single_block(controlnet, seed + k)  # its residual is zero whatever it computes
        dim = block.proj_out.out_features
        with torch.random.fork_rng():  # its random init is zeroed: leave the caller's RNG as it was
            out = torch.nn.Linear(dim, dim).to(next(controlnet.parameters()))
        with torch.no_grad():
            out.weight.zero_()
            out.bias.zero_()
        controlnet.single_transformer_blocks.append(block)
        controlnet.controlnet_single_blocks.append(out)
    controlnet.register_to_config(num_single_layers=want)
    return want


def main(argv: list[str] | None = None) -> dict:
    from diffusers import FluxControlNetModel

    from .train_controlnet import save
    from .trainkit import command_line, log

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--controlnet", type=Path, default=Path("models/controlnet/demo-union"))
    ap.add_argument("--base", type=Path, default=Path("models/demo"), help="the grown base")
    ap.add_argument("--trained", type=int, default=None,
                    help="single blocks of the transformer the ControlNet was trained with (default: its studio.json)")
    args = ap.parse_args(argv)
    meta = json.loads((args.controlnet / "studio.json").read_text())
    trained = args.trained or meta["training"].get("transformer_single_blocks")
    if trained is None:
        ap.error(f"{args.controlnet}/studio.json does not say how many single blocks its transformer had: pass --trained N")
    single = json.loads((args.base / "transformer" / "config.json").read_text())["num_single_layers"]
    net = FluxControlNetModel.from_pretrained(args.controlnet, torch_dtype=torch.float32)
    before = len(net.single_transformer_blocks)
    now = grow_controlnet(net, trained, single)
    record = meta["training"]
    record["transformer_single_blocks"] = single
    record.setdefault("grown", []).append(
        {"command": command_line("studio.demo.grow", argv), "single_layers": [before, now],
         "transformer_single_blocks": [trained, single]})
    save(net, args.controlnet, record)  # as the ControlNet stage saves it: fp16, studio.json, all or nothing
    log(f"{args.controlnet}: {before} -> {now} single layers for a transformer with {single} single blocks")
    return {"single_layers": now}


if __name__ == "__main__":
    main()
