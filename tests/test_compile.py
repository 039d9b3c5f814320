"""--compile: the denoiser's repeated blocks compiled (inductor, on this CPU), the image close to
eager, the Models tab says so, and inductor's cache lies in the cache folder."""

from __future__ import annotations

import numpy as np

from studio.requests import GenerationRequest


def test_a_compiled_tiny_model_draws_what_eager_draws(make_studio, tmp_path):
    eager = make_studio()
    compiled = make_studio(compile=True)
    req = GenerationRequest("a cat", model_id="tiny-flux", seed=3, steps=2)
    a = np.asarray(eager.generate(req).images[0], dtype=np.int16)
    b = np.asarray(compiled.generate(req).images[0], dtype=np.int16)
    assert np.abs(a - b).mean() <= 1.0 and np.abs(a - b).max() <= 8
    [row] = compiled.models.loaded()
    assert row.placement.endswith("+ compiled")
    assert any((tmp_path / "cache" / "inductor").rglob("*"))
