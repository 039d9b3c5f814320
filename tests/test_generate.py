"""txt2img end to end on tiny real pipelines loaded back through the studio's loader."""

import threading
from pathlib import Path

import numpy as np
import pytest

from studio.errors import InvalidRequest
from studio.gallery.files import read_text_chunks
from studio.requests import GenerationRequest
from tests.conftest import png_files

MODELS = ["tiny-flux", "tiny-sdxl", "tiny-sd15"]


def pixels(result, i=0):
    return np.asarray(result.images[i], dtype=np.int16)


@pytest.fixture(scope="module")
def studio(tiny_models_dir, tmp_path_factory):
    from studio.config import Settings
    from studio.wiring import build_studio

    out = tmp_path_factory.mktemp("outputs")
    return build_studio(Settings(models_dir=tiny_models_dir, outputs_dir=out, offline=True, device="cpu"))


@pytest.mark.parametrize("model", MODELS)
def test_same_seed_same_pixels_other_seed_other_pixels(studio, model):
    a = studio.generate(GenerationRequest("a red circle", model_id=model, seed=1))
    b = studio.generate(GenerationRequest("a red circle", model_id=model, seed=1))
    c = studio.generate(GenerationRequest("a red circle", model_id=model, seed=2))
    assert a.images[0].size == (64, 64)
    assert np.array_equal(pixels(a), pixels(b))
    assert np.abs(pixels(a) - pixels(c)).mean() > 1.0


@pytest.mark.parametrize("model", MODELS)
def test_progress_events_equal_steps(studio, model):
    events = []
    studio.generate(GenerationRequest("x", model_id=model, steps=5, seed=3, batch_count=2), on_progress=events.append)
    assert [(e.batch, e.step) for e in events] == [(b, s) for b in range(2) for s in range(1, 6)]
    assert all(e.total == 5 and e.eta is not None for e in events)
    assert events[-1].fraction == 1.0


def count_denoiser_calls(pipe):
    model = getattr(pipe, "transformer", None) or pipe.unet
    calls = []
    handle = model.register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


@pytest.mark.parametrize("model", ["tiny-flux", "tiny-sd15"])
def test_cancel_after_step_one_runs_two_steps_and_writes_nothing(studio, model):
    entry = studio.registry.require(model)
    with studio.models.lease(entry) as pipe:
        calls, handle = count_denoiser_calls(pipe)
    cancel = threading.Event()
    before = png_files(studio.sink.outputs_dir)

    def on_progress(ev):
        if ev.step == 1:
            cancel.set()   # the user clicks Cancel while step 2 runs

    try:
        result = studio.generate(GenerationRequest("x", model_id=model, steps=5, seed=4),
                                 on_progress=on_progress, cancel=cancel)
    finally:
        handle.remove()
    assert len(calls) == 2          # one denoiser call per step (SD batches CFG into the same call)
    assert result.cancelled and result.images == () and result.saved == ()
    assert "cancelled at step 2/5" in result.message
    assert png_files(studio.sink.outputs_dir) == before


def test_batch_images_reproduce_one_by_one(studio):
    batch = studio.generate(GenerationRequest("a cat", model_id="tiny-flux", seed=10, batch_size=2, batch_count=2))
    assert batch.seeds == (10, 11, 12, 13)
    single = studio.generate(GenerationRequest("a cat", model_id="tiny-flux", seed=13))
    assert np.abs(pixels(batch, 3) - pixels(single)).max() <= 1


def test_saved_png_carries_a1111_parameters(studio):
    result = studio.generate(GenerationRequest("a red, big circle", negative_prompt="blurry", model_id="tiny-sd15",
                                               seed=5, steps=3, guidance=6.5))
    text = read_text_chunks(Path(result.saved[0].path))
    assert text["parameters"] == ('a red, big circle\nNegative prompt: blurry\nSteps: 3, Sampler: Euler, '
                                  'CFG scale: 6.5, Seed: 5, Size: 64x64, Model: tiny-sd15')
    again = GenerationRequest.from_json(text["studio"])
    assert again == result.request.replace(batch_size=1, batch_count=1)


def test_random_seed_is_drawn_and_reported(studio):
    result = studio.generate(GenerationRequest("x", model_id="tiny-flux"))
    assert result.request.seed is not None and result.seeds == (result.request.seed,)


@pytest.mark.parametrize("model, words", [("tiny-flux", 40), ("tiny-sd15", 80)])
def test_prompt_over_token_limit_is_refused(studio, model, words):
    with pytest.raises(InvalidRequest) as info:
        studio.generate(GenerationRequest(" ".join(["red"] * words), model_id=model, seed=1))
    assert info.value.field == "prompt" and "reads at most" in str(info.value)


def test_negative_prompt_refused_where_family_has_none(studio):
    with pytest.raises(InvalidRequest) as info:
        studio.generate(GenerationRequest("x", negative_prompt="blurry", model_id="tiny-flux"))
    assert info.value.field == "negative_prompt"


def test_unknown_model_is_a_clear_error(studio):
    from studio.errors import ModelUnavailable

    with pytest.raises(ModelUnavailable, match="unknown model 'nope'"):
        studio.generate(GenerationRequest("x", model_id="nope"))


def test_sd_sampler_can_be_chosen_and_is_restored(studio):
    a = studio.generate(GenerationRequest("x", model_id="tiny-sd15", seed=1, scheduler="DPM++ 2M"))
    b = studio.generate(GenerationRequest("x", model_id="tiny-sd15", seed=1))
    assert np.abs(pixels(a) - pixels(b)).mean() > 0.5
    with studio.models.lease(studio.registry.require("tiny-sd15")) as pipe:
        assert type(pipe.scheduler).__name__ == "EulerDiscreteScheduler"
    with pytest.raises(InvalidRequest):
        studio.generate(GenerationRequest("x", model_id="tiny-flux", scheduler="DDIM"))


def test_builtin_tiny_random_loads_through_the_loader(make_studio):
    studio = make_studio()
    result = studio.generate(GenerationRequest("a red circle", model_id="tiny-random", seed=1))
    assert result.images[0].size == (64, 64) and len(result.saved) == 1


def test_lora_by_name_changes_the_image_and_weight_zero_is_the_base(studio, sd15_lora_named):
    from studio.requests import LoraSpec

    def draw(*loras):
        return pixels(studio.generate(GenerationRequest("a cat", model_id="tiny-sd15", seed=2, loras=loras)))

    base = draw()
    styled = draw(LoraSpec(sd15_lora_named, 1.0))
    assert np.abs(styled - base).mean() > 0.5
    assert np.abs(draw(LoraSpec(sd15_lora_named, 0.0)) - base).max() <= 1
    assert np.array_equal(draw(), base)                 # the next request without it: the base again


def test_unknown_lora_says_where_to_put_it(studio):
    from studio.errors import ModelUnavailable
    from studio.requests import LoraSpec

    with pytest.raises(ModelUnavailable, match="LoRA 'nope' not found in .*loras"):
        studio.generate(GenerationRequest("x", model_id="tiny-sd15", loras=(LoraSpec("nope"),)))
