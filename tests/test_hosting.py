"""Hosting: ZeroGPU's spaces.GPU wraps the GPU work with a sensible duration (a stand-in module);
everywhere else nothing wraps it; the real `spaces` package imports offline; Space front matter."""

from __future__ import annotations

import types

import pytest

from studio import hosting
from studio.config import ROOT
from studio.requests import GenerationRequest


def test_off_zero_gpu_nothing_wraps_and_spaces_is_not_imported():
    assert hosting.gpu_runner({}) is hosting.plain_runner
    assert not hosting.on_space({}) and hosting.on_space({"SPACE_ID": "me/studio"})


def test_the_duration_grows_with_the_work_and_stays_in_bounds():
    small = hosting.estimate_seconds("sd15", 512, 512, 20, 1)
    big = hosting.estimate_seconds("flux-dev", 1024, 1024, 28, 4)
    assert hosting.MIN_SECONDS <= small < big <= hosting.MAX_SECONDS
    assert hosting.estimate_seconds("flux-dev", 1024, 1024, 28, 1) == 38     # 20 + 28 x 1.05 MP x 0.4 x 1.5


def test_on_zero_gpu_the_generate_path_runs_inside_spaces_gpu(make_studio):
    calls = []

    def GPU(fn, duration):  # noqa: N802 - the stand-in's name is spaces'
        calls.append(duration)

        def wrapped(*args, **kwargs):
            calls.append("inside")
            return fn(*args, **kwargs)
        return wrapped

    stand_in = types.SimpleNamespace(GPU=GPU)
    studio = make_studio()
    studio._gpu = hosting.gpu_runner({"SPACES_ZERO_GPU": "true"}, spaces_module=stand_in)
    result = studio.generate(GenerationRequest("a cat", model_id="tiny-flux", seed=1, steps=3, batch_size=2))
    assert len(result.saved) == 2
    assert calls[1] == "inside" and calls[0] == hosting.estimate_seconds("flux-schnell", 64, 64, 3, 2)


def test_the_real_spaces_package_imports_offline_and_is_a_no_op_here():
    spaces = pytest.importorskip("spaces")

    def fn():
        return 42

    assert spaces.GPU(fn, duration=30)() == 42


def test_the_readme_is_a_space_readme():
    import yaml

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n", 2)[1])
    assert meta["sdk"] == "gradio" and (ROOT / meta["app_file"]).is_file()
    import gradio

    assert meta["sdk_version"] == gradio.__version__


def run_app(*args, timeout=60):
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "STUDIO_AUTH": ""}
    return subprocess.Popen([sys.executable, "app.py", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_share_without_auth_is_refused_and_says_why(tmp_path):
    proc = run_app("--share", "--outputs-dir", str(tmp_path / "out"))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--share without --auth: anyone with the link" in out and "--insecure-share" in out


@pytest.mark.e2e
def test_share_with_auth_offline_serves_locally_says_so_in_one_line_and_the_login_holds(tmp_path):
    from gradio_client import Client

    from tests.conftest import free_port
    from tests.test_app_cli import wait_for

    port = free_port()
    proc = run_app("--share", "--auth", "ann:pw", "--port", str(port), "--outputs-dir", str(tmp_path / "out"),
                   "--default-model", "tiny-random")
    try:
        wait_for(f"http://127.0.0.1:{port}/", proc)
        with pytest.raises(Exception):
            Client(f"http://127.0.0.1:{port}/", verbose=False)                  # no login, no API
        Client(f"http://127.0.0.1:{port}/", auth=("ann", "pw"), verbose=False)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    lines = [line for line in out.splitlines() if "share link" in line.lower()]
    assert len(lines) == 1 and lines[0].startswith("No share link:") and "Serving locally only" in lines[0]
    assert "Please check your internet connection" not in out


def test_share_is_allowed_without_auth_in_public_mode_and_the_line_says_who_can_use_it(tmp_path):
    from studio.config import Settings
    from studio.startup import StartupError, check_share, share_line

    base = dict(outputs_dir=tmp_path / "out", share=True)
    with pytest.raises(StartupError, match="--public"):
        check_share(Settings(**base))
    check_share(Settings(**base, public=True))                 # each visitor has a gallery of their own
    check_share(Settings(**base, auth=(("ann", "pw"),)))
    check_share(Settings(**base, insecure_share=True))
    url = "https://abc.gradio.live"
    assert "must log in" in share_line(url, "", Settings(**base, auth=(("ann", "pw"),)))
    assert "each visitor sees only their own images" in share_line(url, "", Settings(**base, public=True))
    assert "anyone with it can use the studio and its whole gallery" in \
        share_line(url, "", Settings(**base, insecure_share=True))
