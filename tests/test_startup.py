"""Starting the studio: mistakes are one line and exit status 2, warnings are said, nothing heavy
is imported before the page is up, and the default model loads once the page is drawn."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from studio.config import Settings
from studio.errors import StorageError
from studio.startup import WarmUp, exposure_warning
from tests.conftest import free_port, launch_chromium, wait_until

ROOT = Path(__file__).resolve().parent.parent
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("STUDIO_")},
       "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}


def app(*flags: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "app.py", *flags], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def busy_port():
    """A port something else is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_port_in_use_names_the_flag_and_exits_2(busy_port):
    started = time.perf_counter()
    proc = app("--port", str(busy_port))
    assert proc.returncode == 2, proc.stderr
    assert f"port {busy_port} is already in use" in proc.stderr and "--port N (or STUDIO_PORT" in proc.stderr
    assert "Traceback" not in proc.stderr and "GRADIO_SERVER_PORT" not in proc.stderr
    assert "Studio on" not in proc.stdout
    assert time.perf_counter() - started < 30          # said before torch and gradio are imported


def test_listen_without_auth_warns_on_the_console(busy_port):
    proc = app("--listen", "--port", str(busy_port))   # the busy port stops it right after the warning
    assert proc.returncode == 2
    warning = next(line for line in proc.stderr.splitlines() if "warning" in line)
    assert "--listen without --auth" in warning and "anyone who can reach port" in warning
    assert "generate images, see the gallery and delete images" in warning and "--auth user:pass" in warning


def test_exposure_warning_for_each_way_in():
    assert exposure_warning(Settings()) == ""
    assert exposure_warning(Settings(host="localhost")) == ""
    assert exposure_warning(Settings(host="0.0.0.0", auth=(("a", "b"),))) == ""
    assert "--host 192.168.1.5 without --auth" in exposure_warning(Settings(host="192.168.1.5"))
    shared = exposure_warning(Settings(share=True))
    assert shared.startswith("--share without --auth") and "the public share link" in shared
    both = exposure_warning(Settings(host="0.0.0.0", share=True))
    assert both.startswith("--listen and --share without --auth") and "delete images" in both


def test_models_dir_that_does_not_exist_stops_the_start(tmp_path):
    proc = app("--models-dir", str(tmp_path / "nope"))
    assert proc.returncode == 2 and f"--models-dir {tmp_path / 'nope'} does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "nope").exists()


def test_outputs_folder_that_cannot_be_written_stops_the_start(tmp_path):
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a folder")
    proc = app("--port", str(free_port()), "--outputs-dir", str(in_the_way / "outputs"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"cannot write to {in_the_way / 'outputs'}: {in_the_way} is a file, not a folder" in proc.stderr
    assert "--outputs-dir" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_default_model_is_one_line_listing_the_known_ones(tmp_path):
    proc = app("--port", str(free_port()), "--default-model", "nope", "--outputs-dir", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "unknown model 'nope'. Known models: demo, tiny-random" in proc.stderr and "Traceback" not in proc.stderr


def test_port_taken_between_the_check_and_the_launch_is_the_same_message(busy_port, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import app
        from studio import startup
        startup.check_address = lambda host, port: None      # as if the port was taken just after the check
        sys.exit(app.main(["--port", "{busy_port}", "--outputs-dir", sys.argv[1]]))
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "out")], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"port {busy_port} is already in use" in proc.stderr and "Traceback" not in proc.stderr


def test_open_gallery_names_the_folder_and_the_reason(tmp_path):
    from studio.wiring import open_gallery

    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match=r"cannot write to .*file: .*file is a file, not a folder\. Choose"):
        open_gallery(tmp_path / "file")
    (tmp_path / "out" / "gallery.db").mkdir(parents=True)     # something that is not a database is in the way
    with pytest.raises(StorageError, match=r"cannot open the gallery .*gallery\.db: unable to open database file"):
        open_gallery(tmp_path / "out")
    sink = open_gallery(tmp_path / "new" / "outputs")         # a missing folder is simply created
    assert (tmp_path / "new" / "outputs" / "gallery.db").is_file() and not list(sink.outputs_dir.glob(".write-test*"))


def test_builtin_model_is_built_in_the_cache_not_in_the_models_dir(tiny_models_dir, tmp_path):
    from studio.requests import GenerationRequest
    from studio.wiring import build_studio

    before = sorted(p.name for p in tiny_models_dir.iterdir())
    studio = build_studio(Settings(models_dir=tiny_models_dir, outputs_dir=tmp_path / "out",
                                   cache_dir=tmp_path / "cache", offline=True, device="cpu"))
    studio.generate(GenerationRequest("a red circle", model_id="tiny-random", seed=1))
    assert (tmp_path / "cache" / "builtin" / "tiny-random" / "model_index.json").is_file()
    assert sorted(p.name for p in tiny_models_dir.iterdir()) == before


def test_importing_and_building_the_ui_leaves_diffusers_transformers_bitsandbytes_out(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import app
        from studio.config import Settings
        from studio.ui.app import build_app
        from studio.wiring import build_studio
        settings = Settings(outputs_dir={str(tmp_path / 'out')!r}, device="cpu")
        build_app(build_studio(settings), settings)
        print(sorted(m for m in ("diffusers", "transformers", "bitsandbytes", "peft", "accelerate")
                     if m in sys.modules))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


class FakeStudio:
    def __init__(self) -> None:
        self.calls = 0

    def warm_up(self) -> None:
        self.calls += 1


def test_warm_up_runs_once_and_falls_back_to_a_timer():
    studio = FakeStudio()
    warm = WarmUp(studio, fallback_s=60)
    threads = [threading.Thread(target=warm.start) for _ in range(4)]   # several pages at once
    for t in threads:
        t.start()
    assert warm.done.wait(30) and studio.calls == 1
    warm.start()
    time.sleep(0.1)
    assert studio.calls == 1
    later = WarmUp(studio2 := FakeStudio(), fallback_s=0.05)
    later.arm()                                                          # no browser comes
    assert later.done.wait(30) and studio2.calls == 1


@pytest.mark.e2e
@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed (launch.sh test installs it)")
def test_default_model_loads_once_the_first_page_is_drawn(tmp_path):
    from playwright.sync_api import sync_playwright

    port, log = free_port(), tmp_path / "console.txt"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--outputs-dir", str(tmp_path / "o")],
                                cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        assert wait_until(lambda: _answers(url) or proc.poll() is not None, timeout=90), log.read_text()
        assert proc.poll() is None, log.read_text()
        time.sleep(1.0)
        assert "loading FluxPipeline" not in log.read_text()            # the page is served, nothing loads yet
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            page = browser.new_page()
            page.goto(url)
            page.locator("textarea").first.wait_for(state="visible", timeout=60_000)
            assert wait_until(lambda: "loaded demo" in log.read_text(), timeout=90), log.read_text()
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    text = log.read_text()
    assert "pip install kernels" not in text and "Traceback" not in text


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False
