"""Start-up bench: how long until the studio's page answers, against a bare gradio page.

    .venv/bin/python bench/startup.py [--runs 3] [--browser]

Two processes, one after the other, each timed from its start until ``GET /`` answers 200
(gradio embeds the app's config in that page, so it is what a browser needs to draw the UI):

- ui_ready_s:    ``app.py`` as ``./launch.sh`` runs it (default models folder, a fresh outputs folder)
- bare_gradio_s: a script that imports torch and gradio and launches a one-textbox ``gr.Blocks``

Both run offline (``HF_HUB_OFFLINE=1``, ``GRADIO_ANALYTICS_ENABLED=False``). Before them a
throwaway ``import torch, gradio`` warms the page cache, so neither side pays for the disk alone.
On two shared cores one pair moves by +-0.3 in the ratio, so by default three pairs run,
interleaved (each side goes first in turn), and the medians are reported: ~35 s in all;
``--runs 1`` for one run each. Then one more start of ``app.py`` is timed until the default model
has made its first image over the API (``first_image_s``: the page, the model load, one
generation). The last line is the figure:
``ui_ready_s=... bare_gradio_s=... ui_ready_vs_bare=... first_image_s=...``.

``--browser`` also times, in the same runs, until headless Chromium (Debian's, as the tests use)
has drawn the page's first text box, and adds ``ui_drawn_s= bare_drawn_s= ui_drawn_vs_bare=``:
what a person sees, including work the server does after it answers (a model load started with
the server, say, which slows the page's later requests).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 60.0

BARE = """
import sys
import torch  # noqa: F401
import gradio as gr

with gr.Blocks() as demo:
    gr.Textbox()
demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]), ssr_mode=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seconds_until_page(command: list[str], port: int, env: dict[str, str], browser=None) -> tuple[float, float]:
    """Start ``command``; seconds until http://127.0.0.1:port/ answers 200, and (with a browser)
    until its first text box is drawn (else 0). Stops it after."""
    url = f"http://127.0.0.1:{port}/"
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        answered = None
        while answered is None and time.perf_counter() - started < TIMEOUT_S:
            if proc.poll() is not None:
                raise SystemExit(f"{command[1]} exited with {proc.returncode}:\n{proc.stderr.read()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        answered = time.perf_counter() - started
            except (urllib.error.URLError, OSError):
                time.sleep(0.02)
        if answered is None:
            raise SystemExit(f"{command[1]}: no page at {url} after {TIMEOUT_S:.0f} s")
        if browser is None:
            return answered, 0.0
        page = browser.new_page()
        page.goto(url)
        page.locator("textarea").first.wait_for(state="visible", timeout=TIMEOUT_S * 1000)
        drawn = time.perf_counter() - started
        page.close()
        return answered, drawn
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def seconds_until_first_image(port: int, env: dict[str, str], outputs: str) -> float:
    """Start ``app.py``; seconds until its default model has made one image over the API (the page,
    the model load and one generation: what the first visitor of a cold Space waits for)."""
    from gradio_client import Client

    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--outputs-dir", outputs], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while time.perf_counter() - started < TIMEOUT_S:
            if proc.poll() is not None:
                raise SystemExit(f"app.py exited with {proc.returncode}:\n{proc.stderr.read()}")
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.05)
        client.predict("a red circle", api_name="/txt2img")
        return time.perf_counter() - started
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="Start-up time of the studio vs a bare torch+gradio page.")
    parser.add_argument("--runs", type=int, default=3, help="pairs of starts, interleaved; medians (default 3)")
    parser.add_argument("--browser", action="store_true", help="also time until headless Chromium draws the page")
    args = parser.parse_args()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("STUDIO_")},
           "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run([sys.executable, "-c", "import torch, gradio"], env=env, check=True)   # warm the page cache
    times: dict[str, list[float]] = {"app": [], "bare": [], "app_drawn": [], "bare_drawn": []}
    with tempfile.TemporaryDirectory(prefix="studio-startup-") as tmp, contextlib.ExitStack() as stack:
        browser = stack.enter_context(chromium()) if args.browser else None
        bare_script = Path(tmp) / "bare.py"
        bare_script.write_text(BARE, encoding="utf-8")
        for run in range(args.runs):
            sides = ["bare", "app"] if run % 2 == 0 else ["app", "bare"]    # neither side always goes first
            for side in sides:
                port = free_port()
                command = ([sys.executable, str(bare_script), str(port)] if side == "bare" else
                           [sys.executable, "app.py", "--port", str(port), "--outputs-dir", f"{tmp}/outputs-{run}"])
                answered, drawn = seconds_until_page(command, port, env, browser)
                times[side].append(answered)
                times[f"{side}_drawn"].append(drawn)
            print(f"run {run + 1}: app {times['app'][-1]:.2f} s, bare {times['bare'][-1]:.2f} s", file=sys.stderr)
        first_image = seconds_until_first_image(free_port(), env, f"{tmp}/outputs-first")
    app, bare = statistics.median(times["app"]), statistics.median(times["bare"])
    line = f"ui_ready_s={app:.2f} bare_gradio_s={bare:.2f} ui_ready_vs_bare={app / bare:.2f} first_image_s={first_image:.2f}"
    if browser is not None:
        app_drawn, bare_drawn = statistics.median(times["app_drawn"]), statistics.median(times["bare_drawn"])
        line += f" ui_drawn_s={app_drawn:.2f} bare_drawn_s={bare_drawn:.2f} ui_drawn_vs_bare={app_drawn / bare_drawn:.2f}"
    print(line)


@contextlib.contextmanager
def chromium():
    """Debian's headless Chromium, started before the clocks run (tests/conftest.py's flags)."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT))
    from tests.conftest import launch_chromium

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            yield browser
        finally:
            browser.close()


if __name__ == "__main__":
    main()
