import pytest

from studio.errors import InvalidRequest
from studio.requests import GenerationRequest, LoraSpec, Task


def field_of(**kwargs) -> str:
    with pytest.raises(InvalidRequest) as info:
        GenerationRequest(prompt="x", **kwargs)
    return info.value.field


@pytest.mark.parametrize("kwargs, field", [
    ({"width": 1000}, "width"),
    ({"height": 72}, "height"),
    ({"steps": 0}, "steps"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_count": 0}, "batch_count"),
    ({"seed": 2**64}, "seed"),
    ({"guidance": -1.0}, "guidance"),
    ({"task": "paint"}, "task"),
    ({"task": Task.IMG2IMG}, "init_image"),
    ({"loras": (LoraSpec("a", 1.0), LoraSpec("a", 0.5))}, "loras"),
])
def test_invalid_requests_name_the_field(kwargs, field):
    assert field_of(**kwargs) == field


def test_size_message_suggests_neighbours():
    with pytest.raises(InvalidRequest, match="multiple of 16, got 1000 \\(try 992 or 1008\\)"):
        GenerationRequest(prompt="x", width=1000)


def test_seed_minus_one_means_random():
    assert GenerationRequest(prompt="x", seed=-1).seed is None


def test_json_round_trip_keeps_everything():
    req = GenerationRequest(prompt='a "cat", on: a mat\nnew line — 猫', negative_prompt="blurry", model_id="m",
                            width=512, height=768, steps=20, guidance=7.5, seed=42, batch_size=2,
                            loras=(LoraSpec("detail", 0.7),), extra=(("clip_skip", 2),))
    back = GenerationRequest.from_json(req.to_json())
    assert back == req


def test_seed_of_follows_a1111_batches():
    req = GenerationRequest(prompt="x", seed=10, batch_size=3, batch_count=2)
    assert [req.seed_of(b, i) for b in range(2) for i in range(3)] == [10, 11, 12, 13, 14, 15]


def test_resolved_fills_only_missing_fields():
    req = GenerationRequest(prompt="x", steps=9).resolved(model_id="m", width=64, height=64, steps=4,
                                                          guidance=0.0, seed=7, scheduler="Euler")
    assert (req.model_id, req.width, req.steps, req.guidance, req.seed) == ("m", 64, 9, 0.0, 7)
