"""Request + leased pipeline -> pipeline keyword arguments -> images.

The keyword arguments come from the binders (``binders.py``, driven by the catalog's data); the
runner adds the seeded generators, the step callback and the scheduler of the request. Knows
nothing of Gradio, files or the gallery.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from studio.engine import binders
from studio.engine.binders import Inputs
from studio.engine.callbacks import StepCallback
from studio.errors import InvalidRequest
from studio.models.catalog import Family, PipeSpec
from studio.requests import GenerationRequest


def samplers_for(family: Family) -> list[str]:
    return list(family.samplers)


def check_sampler(family: Family, name: str) -> None:
    if name not in family.samplers:
        raise InvalidRequest("scheduler", f"{family.label} offers {samplers_for(family)}, got {name!r}")


@contextmanager
def scheduler_set(pipe, family: Family, name: str):
    """Swap the pipeline's scheduler for one call; put the original back after."""
    original = pipe.scheduler
    cls_name, extra = family.samplers[name]
    if type(original).__name__ == cls_name and not extra:
        yield
        return
    import diffusers

    pipe.scheduler = getattr(diffusers, cls_name).from_config(original.config, **extra)
    try:
        yield
    finally:
        pipe.scheduler = original


def _reader_name(pipe, attr: str, tokenizer) -> str:
    """CLIP / T5 / ..., named by the text encoder the tokenizer feeds (``tokenizer_2`` ->
    ``text_encoder_2``): a generic tokenizer class (``PreTrainedTokenizerFast``, read back by
    transformers 5 as ``TokenizersBackend``) says nothing about which encoder it is."""
    encoder = getattr(pipe, attr.replace("tokenizer", "text_encoder"), None)
    for name in (type(encoder).__name__ if encoder is not None else "", type(tokenizer).__name__):
        if "CLIP" in name:
            return "CLIP"
        if "T5" in name:
            return "T5"
    return type(tokenizer).__name__.removesuffix("Fast").removesuffix("Tokenizer")


def prompt_readers(pipe, family: Family, main_limit: int) -> list[tuple[str, object, int]]:
    """(name, tokenizer, tokens it reads, specials included) for each text encoder of the pipeline.
    The family's ``token_encoder`` reads ``main_limit`` (T5's max_sequence_length on FLUX/SD3);
    the others read their tokenizer's ``model_max_length`` (CLIP: 77)."""
    out = []
    for attr in family.prompt_encoders:
        tokenizer = getattr(pipe, attr, None)
        if tokenizer is None:
            continue
        limit = main_limit if attr == family.token_encoder else int(tokenizer.model_max_length)
        out.append((_reader_name(pipe, attr, tokenizer), tokenizer, limit))
    return out


def check_prompt_length(pipe, family: Family, request: GenerationRequest, limit: int, *,
                        model_label: str) -> list[str]:
    """Refuse a prompt that an encoder would silently cut: the main one (``token_encoder``), and any
    other that reads as many tokens or more (CLIP beside T5 on the demo model). An encoder that reads
    fewer (CLIP's pooled vector beside T5's 256 on FLUX/SD3) reads only the start: that is how those
    models work, and it comes back as a notice, not an error."""
    readers = prompt_readers(pipe, family, limit)
    notices = []
    for field, text in (("prompt", request.prompt), ("negative_prompt", request.negative_prompt)):
        if not text:
            continue
        for name, tokenizer, n in readers:
            count = len(tokenizer(text, truncation=False)["input_ids"])
            if count <= n:
                continue
            if n >= limit:
                raise InvalidRequest(field, f"is {count} {name} tokens long; {model_label} reads at most {n} "
                                            f"(special tokens included) and would silently drop the rest. Shorten it.")
            notices.append(f"{field}: {name} reads the first {n} of its {count} tokens (the rest goes to the "
                           f"longer encoder only)")
    return notices


def run(pipe, family: Family, spec: PipeSpec, request: GenerationRequest, inputs: Inputs, *, seeds: list[int],
        callback: StepCallback, max_sequence_length: int | None) -> list:
    """One pipeline call: ``request.batch_size`` images, one seeded CPU generator each."""
    generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    kwargs = binders.bind(family, spec, request, inputs, max_sequence_length=max_sequence_length)
    with scheduler_set(pipe, family, request.scheduler), torch.inference_mode():
        out = pipe(**kwargs, generator=generators, callback_on_step_end=callback)
    return list(out.images)
