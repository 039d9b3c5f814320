"""app.py as a user starts it: flags, auth, the default model, a real process on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"app.py exited with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("app.py did not start in time")


def test_app_starts_with_flags_and_auth(tiny_models_dir, tmp_path):
    from gradio_client import Client

    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1",
           "STUDIO_OUTPUTS_DIR": str(tmp_path / "out")}          # an environment twin
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--offline", "--models-dir",
                             str(tiny_models_dir), "--default-model", "tiny-flux", "--auth", "ann:pw"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for(url, proc)
        with pytest.raises(Exception):
            Client(url, verbose=False)                           # no login, no API
        client = Client(url, auth=("ann", "pw"), verbose=False)
        gallery, seed, *_ = client.predict("a red circle", seed=9, api_name="/txt2img")
        assert seed == "9" and len(gallery) == 1
        written = list((tmp_path / "out").rglob("*.png"))
        assert [p.name.endswith("-9.png") for p in written] == [True]
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert f"Studio on http://127.0.0.1:{port}" in out and "default model: tiny-flux" in out
    assert "loading FluxPipeline" in out and "pip install kernels" not in out    # bitsandbytes only for NF4


def test_bad_flag_value_is_a_clear_message():
    proc = subprocess.run([sys.executable, "app.py", "--auth", "no-colon-here"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "STUDIO_AUTH": ""})
    assert proc.returncode == 2 and "auth: expected user:pass or the path" in proc.stderr
